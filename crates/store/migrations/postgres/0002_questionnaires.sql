-- Questionnaire responses (scored) and the safety alerts they raise.

CREATE TABLE questionnaire_responses (
    id                 UUID PRIMARY KEY,
    clinic_id          UUID NOT NULL REFERENCES clinics(id),
    patient_id         UUID NOT NULL REFERENCES patients(id),
    instrument         TEXT NOT NULL,
    instrument_version TEXT NOT NULL,
    answers            TEXT NOT NULL,
    total              INTEGER,
    severity           TEXT,
    result             TEXT NOT NULL,
    entered_by         UUID NOT NULL REFERENCES users(id),
    entered_via        TEXT NOT NULL CHECK (entered_via IN ('staff','portal')),
    submitted_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX questionnaire_responses_by_patient ON questionnaire_responses (patient_id, submitted_at);

CREATE TABLE safety_alerts (
    id              UUID PRIMARY KEY,
    clinic_id       UUID NOT NULL REFERENCES clinics(id),
    patient_id      UUID NOT NULL REFERENCES patients(id),
    response_id     UUID NOT NULL REFERENCES questionnaire_responses(id),
    level           TEXT NOT NULL CHECK (level IN ('review','moderate','high')),
    reason          TEXT NOT NULL,
    raised_at       TIMESTAMPTZ NOT NULL,
    acknowledged_by UUID REFERENCES users(id),
    acknowledged_at TIMESTAMPTZ,
    action_taken    TEXT,
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);
CREATE INDEX safety_alerts_open ON safety_alerts (clinic_id, acknowledged_at, raised_at);
