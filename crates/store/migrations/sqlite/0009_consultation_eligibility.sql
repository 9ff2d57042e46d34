-- The consultation record: every save is a new version (the JSON of the domain's
-- ConsultationInput, already validated); the latest version is current. Rows are never changed.
CREATE TABLE consultations (
    id                      BLOB PRIMARY KEY NOT NULL,
    clinic_id               BLOB NOT NULL REFERENCES clinics(id),
    patient_id              BLOB NOT NULL REFERENCES patients(id),
    version                 INTEGER NOT NULL,
    body                    TEXT NOT NULL,
    diagnosis_table_version TEXT NOT NULL,
    recorded_by             BLOB NOT NULL REFERENCES users(id),
    recorded_at             BIGINT NOT NULL,
    UNIQUE (patient_id, version)
);

-- Signed eligibility decisions. Never edited: an amendment is a new row naming the decision it
-- amends, with its reason; UNIQUE (amends_id) keeps the chain linear, so two prescribers
-- amending the same decision at once cannot both win.
CREATE TABLE eligibility_decisions (
    id                  BLOB PRIMARY KEY NOT NULL,
    clinic_id           BLOB NOT NULL REFERENCES clinics(id),
    patient_id          BLOB NOT NULL REFERENCES patients(id),
    verdict             TEXT NOT NULL CHECK (verdict IN ('eligible','not_eligible')),
    routes              TEXT NOT NULL,
    spravato_indication TEXT,
    dispositions        TEXT NOT NULL,
    summary             TEXT NOT NULL,
    ruleset_version     TEXT NOT NULL,
    settings_version    BIGINT NOT NULL,
    outcome             TEXT NOT NULL,
    findings            TEXT NOT NULL,
    input_snapshot      TEXT NOT NULL,
    input_sha256        TEXT NOT NULL,
    signed_by           BLOB NOT NULL REFERENCES users(id),
    signed_at           BIGINT NOT NULL,
    amends_id           BLOB UNIQUE REFERENCES eligibility_decisions(id),
    amendment_reason    TEXT,
    CHECK ((amends_id IS NULL) = (amendment_reason IS NULL))
);
CREATE INDEX eligibility_decisions_by_patient ON eligibility_decisions (patient_id, signed_at);
-- One first (unamending) decision per patient: every later one is an amendment.
CREATE UNIQUE INDEX eligibility_decisions_one_first ON eligibility_decisions (patient_id) WHERE amends_id IS NULL;

-- Side states staff set on the pathway (hold, resume, withdraw, complete, reopen).
CREATE TABLE pathway_events (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    patient_id  BLOB NOT NULL REFERENCES patients(id),
    event       TEXT NOT NULL CHECK (event IN ('hold','resume','withdraw','complete','reopen')),
    reason      TEXT NOT NULL,
    recorded_by BLOB NOT NULL REFERENCES users(id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX pathway_events_by_patient ON pathway_events (patient_id, id);

-- The clinic's CONFIG-DEFAULT eligibility thresholds (JSON of EligibilitySettings); NULL means
-- the spec's defaults.
ALTER TABLE clinic_settings ADD COLUMN eligibility TEXT;

CREATE TRIGGER consultations_no_update BEFORE UPDATE ON consultations
BEGIN SELECT RAISE(ABORT, 'consultations is append-only'); END;
CREATE TRIGGER consultations_no_delete BEFORE DELETE ON consultations
BEGIN SELECT RAISE(ABORT, 'consultations is append-only'); END;
CREATE TRIGGER eligibility_decisions_no_update BEFORE UPDATE ON eligibility_decisions
BEGIN SELECT RAISE(ABORT, 'eligibility_decisions is append-only'); END;
CREATE TRIGGER eligibility_decisions_no_delete BEFORE DELETE ON eligibility_decisions
BEGIN SELECT RAISE(ABORT, 'eligibility_decisions is append-only'); END;
CREATE TRIGGER pathway_events_no_update BEFORE UPDATE ON pathway_events
BEGIN SELECT RAISE(ABORT, 'pathway_events is append-only'); END;
CREATE TRIGGER pathway_events_no_delete BEFORE DELETE ON pathway_events
BEGIN SELECT RAISE(ABORT, 'pathway_events is append-only'); END;
