-- Outgoing messages (delivered by a mailer when one is configured; shown to admins otherwise) and
-- single-use, expiring invitations for patients to open their portal account.
CREATE TABLE outbox (
    id         BLOB PRIMARY KEY NOT NULL,
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT
);
CREATE INDEX outbox_by_clinic ON outbox (clinic_id, created_at);

CREATE TABLE portal_invitations (
    id         BLOB PRIMARY KEY NOT NULL,
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    patient_id BLOB NOT NULL REFERENCES patients(id),
    email      TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by BLOB NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
