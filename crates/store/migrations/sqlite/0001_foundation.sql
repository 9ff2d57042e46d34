-- Foundation: clinics, accounts, sessions, patients, the audit chain.
-- Timestamps are INTEGER microseconds since the Unix epoch, UTC (see UtcTs).

CREATE TABLE clinics (
    id              BLOB PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    time_zone       TEXT NOT NULL,
    patient_counter BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

-- Clinic settings are versioned: every change is a new row, decisions record the version used.
CREATE TABLE clinic_settings (
    clinic_id          BLOB NOT NULL REFERENCES clinics(id),
    version            BIGINT NOT NULL,
    mfa_required_roles TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    created_by         BLOB,
    PRIMARY KEY (clinic_id, version)
);

CREATE TABLE patients (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    mrn         TEXT NOT NULL,
    given_name  TEXT NOT NULL,
    family_name TEXT NOT NULL,
    birth_date  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (clinic_id, mrn)
);
CREATE INDEX patients_by_name ON patients (clinic_id, family_name, given_name);

CREATE TABLE users (
    id              BLOB PRIMARY KEY NOT NULL,
    clinic_id       BLOB NOT NULL REFERENCES clinics(id),
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin','prescriber','nurse','therapist','frontdesk','patient')),
    patient_id      BLOB UNIQUE REFERENCES patients(id),
    password_hash   TEXT NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    totp_secret     TEXT,
    totp_enabled    BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step  BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    -- A patient account is linked to exactly one patient record; a staff account to none.
    CHECK ((role = 'patient') = (patient_id IS NOT NULL))
);

CREATE TABLE recovery_codes (
    user_id   BLOB NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Server-side sessions. Only the SHA-256 of the bearer/cookie token is stored.
CREATE TABLE sessions (
    id           BLOB PRIMARY KEY NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      BLOB NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('browser','api')),
    csrf_token   TEXT NOT NULL,
    mfa_pending  BOOLEAN NOT NULL,
    source_ip    TEXT,
    user_agent   TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at     BIGINT,
    ended_reason TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, ended_at);

CREATE TABLE audit_events (
    seq           BIGINT PRIMARY KEY NOT NULL,
    at            BIGINT NOT NULL,
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

-- The head of the chain, updated in the same transaction as each append. It serialises appends
-- (so the chain never forks) and lets verification notice events deleted from the end.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;
