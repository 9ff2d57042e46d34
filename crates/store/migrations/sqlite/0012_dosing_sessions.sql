-- Dosing protocols as versioned clinic content (KAP-SPEC 4, 5, 6): the bundled files are version
-- one; a medical director's change is a new row, never an update, and each session names the
-- version it ran under.
CREATE TABLE protocol_versions (
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    protocol_id TEXT NOT NULL,
    version     TEXT NOT NULL,
    route       TEXT NOT NULL,
    definition  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  BLOB REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (clinic_id, protocol_id, version)
);
CREATE TRIGGER protocol_versions_no_update BEFORE UPDATE ON protocol_versions
BEGIN SELECT RAISE(ABORT, 'protocol_versions is append-only'); END;
CREATE TRIGGER protocol_versions_no_delete BEFORE DELETE ON protocol_versions
BEGIN SELECT RAISE(ABORT, 'protocol_versions is append-only'); END;

-- The medical-director permission: a prescriber who may change the clinic's protocols.
ALTER TABLE users ADD COLUMN medical_director BOOLEAN NOT NULL DEFAULT FALSE;

-- One dosing session per dosing appointment. Its clinical content is the append-only list of
-- events below; this row holds what the floor board needs to find it quickly (state, times),
-- rewritten after each event from the domain's fold of the events.
CREATE TABLE dosing_sessions (
    id               BLOB PRIMARY KEY NOT NULL,
    clinic_id        BLOB NOT NULL REFERENCES clinics(id),
    appointment_id   BLOB NOT NULL UNIQUE REFERENCES appointments(id),
    patient_id       BLOB NOT NULL REFERENCES patients(id),
    location_id      BLOB NOT NULL REFERENCES locations(id),
    room_id          BLOB REFERENCES rooms(id),
    protocol_id      TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    state            TEXT NOT NULL,
    dose_started_at  BIGINT,
    event_count      INTEGER NOT NULL DEFAULT 0,
    created_by       BLOB NOT NULL REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX dosing_sessions_location ON dosing_sessions (clinic_id, location_id, created_at);

-- What happened in a session, in order: check-in, readings, the dose, alerts acknowledged,
-- adverse events, discharge. Never changed or deleted; a correction is a new event. `seq` is the
-- event's place in its session, so two clinicians recording at once cannot both append event n.
CREATE TABLE session_events (
    session_id  BLOB NOT NULL REFERENCES dosing_sessions(id),
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    recorded_by BLOB NOT NULL REFERENCES users(id),
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TRIGGER session_events_no_update BEFORE UPDATE ON session_events
BEGIN SELECT RAISE(ABORT, 'session_events is append-only'); END;
CREATE TRIGGER session_events_no_delete BEFORE DELETE ON session_events
BEGIN SELECT RAISE(ABORT, 'session_events is append-only'); END;

-- A change anywhere in a clinic's sessions bumps its counter: the floor board's live stream
-- watches this one row, which works the same with several server processes.
CREATE TABLE floor_changes (
    clinic_id BLOB PRIMARY KEY REFERENCES clinics(id),
    counter   BIGINT NOT NULL
);

-- SPRAVATO REMS Patient Monitoring Form submissions (KAP-SPEC 5.6): due 7 calendar days after the
-- session. A resubmission is a new row.
CREATE TABLE rems_form_submissions (
    id            BLOB PRIMARY KEY NOT NULL,
    session_id    BLOB NOT NULL REFERENCES dosing_sessions(id),
    form_version  TEXT NOT NULL,
    submitted_on  TEXT NOT NULL,
    confirmation  TEXT,
    submitted_by  BLOB NOT NULL REFERENCES users(id),
    recorded_at   BIGINT NOT NULL
);
CREATE INDEX rems_form_submissions_session ON rems_form_submissions (session_id);

-- GATE-03: Spravato is given only in a REMS-certified healthcare setting; the admin records
-- each location's certification.
ALTER TABLE locations ADD COLUMN rems_certified BOOLEAN NOT NULL DEFAULT FALSE;
