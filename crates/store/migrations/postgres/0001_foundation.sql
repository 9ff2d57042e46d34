-- Foundation: clinics, accounts, sessions, patients, the audit chain.

CREATE TABLE clinics (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    time_zone       TEXT NOT NULL,
    patient_counter BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL
);

-- Clinic settings are versioned: every change is a new row, decisions record the version used.
CREATE TABLE clinic_settings (
    clinic_id          UUID NOT NULL REFERENCES clinics(id),
    version            BIGINT NOT NULL,
    mfa_required_roles TEXT NOT NULL DEFAULT '',
    created_at         TIMESTAMPTZ NOT NULL,
    created_by         UUID,
    PRIMARY KEY (clinic_id, version)
);

CREATE TABLE patients (
    id          UUID PRIMARY KEY,
    clinic_id   UUID NOT NULL REFERENCES clinics(id),
    mrn         TEXT NOT NULL,
    given_name  TEXT NOT NULL,
    family_name TEXT NOT NULL,
    birth_date  DATE NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (clinic_id, mrn)
);
CREATE INDEX patients_by_name ON patients (clinic_id, family_name, given_name);

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    clinic_id       UUID NOT NULL REFERENCES clinics(id),
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin','prescriber','nurse','therapist','frontdesk','patient')),
    patient_id      UUID UNIQUE REFERENCES patients(id),
    password_hash   TEXT NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    TIMESTAMPTZ,
    totp_secret     TEXT,
    totp_enabled    BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step  BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    -- A patient account is linked to exactly one patient record; a staff account to none.
    CHECK ((role = 'patient') = (patient_id IS NOT NULL))
);

CREATE TABLE recovery_codes (
    user_id   UUID NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    used_at   TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

-- Server-side sessions. Only the SHA-256 of the bearer/cookie token is stored.
CREATE TABLE sessions (
    id           UUID PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      UUID NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('browser','api')),
    csrf_token   TEXT NOT NULL,
    mfa_pending  BOOLEAN NOT NULL,
    source_ip    TEXT,
    user_agent   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ,
    ended_reason TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, ended_at);

CREATE TABLE audit_events (
    seq           BIGINT PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    clinic_id     TEXT,
    actor_user_id TEXT,
    actor_role    TEXT,
    action        TEXT NOT NULL,
    entity_type   TEXT NOT NULL,
    entity_id     TEXT,
    patient_id    TEXT,
    source_ip     TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_events (at);
CREATE INDEX audit_by_actor ON audit_events (actor_user_id, seq);
CREATE INDEX audit_by_patient ON audit_events (patient_id, seq);
CREATE INDEX audit_by_action ON audit_events (action, seq);

-- The head of the chain, updated in the same transaction as each append. Its row lock serialises
-- appends (so the chain never forks) and it lets verification notice events deleted from the end.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION kapstone_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION kapstone_append_only();
