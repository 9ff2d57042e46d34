-- The consultation record: every save is a new version (the JSON of the domain's
-- ConsultationInput, already validated); the latest version is current. Rows are never changed.
CREATE TABLE consultations (
    id                      UUID PRIMARY KEY,
    clinic_id               UUID NOT NULL REFERENCES clinics(id),
    patient_id              UUID NOT NULL REFERENCES patients(id),
    version                 INTEGER NOT NULL,
    body                    TEXT NOT NULL,
    diagnosis_table_version TEXT NOT NULL,
    recorded_by             UUID NOT NULL REFERENCES users(id),
    recorded_at             TIMESTAMPTZ NOT NULL,
    UNIQUE (patient_id, version)
);

-- Signed eligibility decisions. Never edited: an amendment is a new row naming the decision it
-- amends, with its reason; UNIQUE (amends_id) keeps the chain linear, so two prescribers
-- amending the same decision at once cannot both win.
CREATE TABLE eligibility_decisions (
    id                  UUID PRIMARY KEY,
    clinic_id           UUID NOT NULL REFERENCES clinics(id),
    patient_id          UUID NOT NULL REFERENCES patients(id),
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
    signed_by           UUID NOT NULL REFERENCES users(id),
    signed_at           TIMESTAMPTZ NOT NULL,
    amends_id           UUID UNIQUE REFERENCES eligibility_decisions(id),
    amendment_reason    TEXT,
    CHECK ((amends_id IS NULL) = (amendment_reason IS NULL))
);
CREATE INDEX eligibility_decisions_by_patient ON eligibility_decisions (patient_id, signed_at);
-- One first (unamending) decision per patient: every later one is an amendment.
CREATE UNIQUE INDEX eligibility_decisions_one_first ON eligibility_decisions (patient_id) WHERE amends_id IS NULL;

-- Side states staff set on the pathway (hold, resume, withdraw, complete, reopen).
CREATE TABLE pathway_events (
    id          UUID PRIMARY KEY,
    clinic_id   UUID NOT NULL REFERENCES clinics(id),
    patient_id  UUID NOT NULL REFERENCES patients(id),
    event       TEXT NOT NULL CHECK (event IN ('hold','resume','withdraw','complete','reopen')),
    reason      TEXT NOT NULL,
    recorded_by UUID NOT NULL REFERENCES users(id),
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX pathway_events_by_patient ON pathway_events (patient_id, id);

-- The clinic's CONFIG-DEFAULT eligibility thresholds (JSON of EligibilitySettings); NULL means
-- the spec's defaults.
ALTER TABLE clinic_settings ADD COLUMN eligibility TEXT;

CREATE TRIGGER consultations_append_only BEFORE UPDATE OR DELETE ON consultations
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER eligibility_decisions_append_only BEFORE UPDATE OR DELETE ON eligibility_decisions
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER pathway_events_append_only BEFORE UPDATE OR DELETE ON pathway_events
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
