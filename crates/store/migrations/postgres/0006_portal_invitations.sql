-- Outgoing messages (delivered by a mailer when one is configured; shown to admins otherwise) and
-- single-use, expiring invitations for patients to open their portal account.
CREATE TABLE outbox (
    id         UUID PRIMARY KEY,
    clinic_id  UUID NOT NULL REFERENCES clinics(id),
    to_address TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at    TIMESTAMPTZ
);
CREATE INDEX outbox_by_clinic ON outbox (clinic_id, created_at);

CREATE TABLE portal_invitations (
    id         UUID PRIMARY KEY,
    clinic_id  UUID NOT NULL REFERENCES clinics(id),
    patient_id UUID NOT NULL REFERENCES patients(id),
    email      TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by UUID NOT NULL REFERENCES users(id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
