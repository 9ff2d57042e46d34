-- FHIR Bulk Data export jobs (issue 8). A request queues a job; one server process claims it
-- (UPDATE ... WHERE status = 'queued'), streams the clinic's rows into NDJSON files under the
-- configured export directory and records the files here. Only the requester may read the
-- status and download the files.
CREATE TABLE fhir_export_jobs (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics(id),
    requester    UUID NOT NULL REFERENCES users(id),
    level        TEXT NOT NULL CHECK (level IN ('system','patient','group')),
    group_id     UUID,
    types        TEXT NOT NULL,
    request_url  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed')),
    progress     TEXT,
    output       TEXT,
    error        TEXT,
    lease_until  TIMESTAMPTZ,
    requested_at TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX fhir_export_jobs_by_status ON fhir_export_jobs (status, requested_at);
-- Keyset paging of a patient's dosing sessions (FHIR Encounter) in id order.
CREATE INDEX dosing_sessions_by_patient ON dosing_sessions (patient_id, id);
