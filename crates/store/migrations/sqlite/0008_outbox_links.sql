-- Outbox rows name the patient and the invitation they carry, so reads of the outbox are audited
-- per patient and a link can be removed from the message once it is used or replaced.
ALTER TABLE outbox ADD COLUMN patient_id BLOB REFERENCES patients(id);
ALTER TABLE outbox ADD COLUMN invitation_id BLOB REFERENCES portal_invitations(id);
