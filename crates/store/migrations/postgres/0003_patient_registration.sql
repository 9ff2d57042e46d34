-- Registration details and a folded search key (lower case, accents removed) for patient search.
ALTER TABLE patients ADD COLUMN sex_at_birth TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE patients ADD COLUMN gender_identity TEXT;
ALTER TABLE patients ADD COLUMN pronouns TEXT;
ALTER TABLE patients ADD COLUMN phone TEXT;
ALTER TABLE patients ADD COLUMN email TEXT;
ALTER TABLE patients ADD COLUMN address TEXT;
ALTER TABLE patients ADD COLUMN emergency_contact_name TEXT;
ALTER TABLE patients ADD COLUMN emergency_contact_phone TEXT;
ALTER TABLE patients ADD COLUMN search_key TEXT NOT NULL DEFAULT '';
-- Rows from before this migration: best effort without accent folding.
UPDATE patients SET search_key = lower(family_name || ' ' || given_name || ' ' || mrn);
CREATE INDEX patients_by_birth_date ON patients (clinic_id, birth_date);
