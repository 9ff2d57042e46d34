-- Questionnaires assigned to a patient to fill in the portal.
CREATE TABLE questionnaire_assignments (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics(id),
    patient_id   BLOB NOT NULL REFERENCES patients(id),
    instrument   TEXT NOT NULL,
    assigned_by  BLOB NOT NULL REFERENCES users(id),
    assigned_at  BIGINT NOT NULL,
    response_id  BLOB REFERENCES questionnaire_responses(id),
    completed_at BIGINT
);
CREATE INDEX questionnaire_assignments_open ON questionnaire_assignments (patient_id, completed_at);
