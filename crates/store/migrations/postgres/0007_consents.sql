-- Signed consents: the exact document (id, version, SHA-256 of its text), the typed name, when,
-- from where, how (portal or paper) and who recorded it; revocation keeps the original row.
CREATE TABLE consents (
    id               UUID PRIMARY KEY,
    clinic_id        UUID NOT NULL REFERENCES clinics(id),
    patient_id       UUID NOT NULL REFERENCES patients(id),
    document_id      TEXT NOT NULL,
    document_version TEXT NOT NULL,
    document_sha256  TEXT NOT NULL,
    signed_name      TEXT NOT NULL,
    signed_at        TIMESTAMPTZ NOT NULL,
    signed_ip        TEXT,
    method           TEXT NOT NULL CHECK (method IN ('portal','paper')),
    recorded_by      UUID NOT NULL REFERENCES users(id),
    revoked_at       TIMESTAMPTZ,
    revoked_by       UUID REFERENCES users(id),
    revoke_reason    TEXT
);
CREATE INDEX consents_by_patient ON consents (patient_id, document_id, signed_at);

-- Consent validity is a clinic setting (default 12 months).
ALTER TABLE clinic_settings ADD COLUMN consent_validity_months INTEGER NOT NULL DEFAULT 12;
