-- Patients' rights over their record (KAP-SPEC 10, 45 CFR 164.524/164.526; TV-HIP-1, TV-HIP-2):
-- requests for access and for amendment, with the deadline's one extension and its written
-- reason, the answer (provided/denied for access, accepted/denied for amendment) with its basis,
-- and for a denied amendment the patient's statement of disagreement and the clinic's rebuttal,
-- linked on the same row. Dates are the clinic's calendar days (TEXT, YYYY-MM-DD).
CREATE TABLE record_requests (
    id               BLOB PRIMARY KEY NOT NULL,
    clinic_id        BLOB NOT NULL REFERENCES clinics(id),
    patient_id       BLOB NOT NULL REFERENCES patients(id),
    kind             TEXT NOT NULL CHECK (kind IN ('access','amendment')),
    received_on      TEXT NOT NULL,
    requested_by     BLOB NOT NULL REFERENCES users(id),
    via              TEXT NOT NULL CHECK (via IN ('portal','staff')),
    requested        TEXT,
    extended_on      TEXT,
    extension_reason TEXT,
    extended_until   TEXT,
    answered_on      TEXT,
    outcome          TEXT CHECK (outcome IN ('provided','denied','accepted')),
    basis            TEXT,
    records          TEXT,
    answered_by      BLOB REFERENCES users(id),
    disagreement_on  TEXT,
    disagreement     TEXT,
    rebuttal_on      TEXT,
    rebuttal         TEXT,
    rebuttal_by      BLOB REFERENCES users(id),
    created_at       BIGINT NOT NULL,
    CHECK ((kind = 'amendment') = (requested IS NOT NULL))
);
CREATE INDEX record_requests_open ON record_requests (clinic_id, answered_on);
CREATE INDEX record_requests_patient ON record_requests (patient_id, created_at);

-- Questionnaires the measurement-cadence job assigned (KAP-SPEC 7.10): which course, instrument
-- and occasion each answers, and the clinic settings version whose cadence it used. The unique
-- index makes the job idempotent in any number of server processes.
CREATE TABLE measure_assignments (
    assignment_id    BLOB PRIMARY KEY NOT NULL REFERENCES questionnaire_assignments(id),
    clinic_id        BLOB NOT NULL REFERENCES clinics(id),
    patient_id       BLOB NOT NULL REFERENCES patients(id),
    course_id        BLOB NOT NULL REFERENCES treatment_courses(id),
    instrument       TEXT NOT NULL,
    occasion         TEXT NOT NULL,
    due_by           BIGINT NOT NULL,
    settings_version BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX measure_assignments_once ON measure_assignments (course_id, instrument, occasion);

-- KAP-SPEC 7.10 cadence (CONFIG-DEFAULT), JSON of MeasurementSettings; NULL is the defaults.
ALTER TABLE clinic_settings ADD COLUMN measurement TEXT;
