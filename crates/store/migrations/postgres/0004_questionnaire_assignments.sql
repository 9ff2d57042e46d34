-- Questionnaires assigned to a patient to fill in the portal.
CREATE TABLE questionnaire_assignments (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics(id),
    patient_id   UUID NOT NULL REFERENCES patients(id),
    instrument   TEXT NOT NULL,
    assigned_by  UUID NOT NULL REFERENCES users(id),
    assigned_at  TIMESTAMPTZ NOT NULL,
    response_id  UUID REFERENCES questionnaire_responses(id),
    completed_at TIMESTAMPTZ
);
CREATE INDEX questionnaire_assignments_open ON questionnaire_assignments (patient_id, completed_at);
