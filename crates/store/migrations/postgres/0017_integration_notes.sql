-- Integration notes (KAP-SPEC 2.1 stage 7, KAP-SPEC 10): progress-note content of an integration
-- session, linked to the dosing session it follows. Part of the record once signed; a draft is
-- its author's and is not part of the record. This is not the psychotherapy-note store.
--
-- A draft is updated in place by its author; once `signed_at` is set the row never changes and
-- is never deleted (triggers). A correction is a row of `integration_note_amendments` naming the
-- note, with its author, time and reason; the original stays as signed (TV-HIP-4).
CREATE TABLE integration_notes (
    id         UUID PRIMARY KEY NOT NULL,
    clinic_id  UUID NOT NULL REFERENCES clinics(id),
    session_id UUID NOT NULL REFERENCES dosing_sessions(id),
    patient_id UUID NOT NULL REFERENCES patients(id),
    author_id  UUID NOT NULL REFERENCES users(id),
    summary    TEXT NOT NULL,
    plan       TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    signed_at  TIMESTAMPTZ
);
CREATE INDEX integration_notes_patient ON integration_notes (clinic_id, patient_id, created_at);
CREATE INDEX integration_notes_session ON integration_notes (clinic_id, session_id);
CREATE TRIGGER integration_notes_signed_immutable BEFORE UPDATE OR DELETE ON integration_notes
    FOR EACH ROW WHEN (OLD.signed_at IS NOT NULL) EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER integration_notes_no_truncate BEFORE TRUNCATE ON integration_notes
    FOR EACH STATEMENT EXECUTE FUNCTION kapstone_append_only();

CREATE TABLE integration_note_amendments (
    id         UUID PRIMARY KEY NOT NULL,
    note_id    UUID NOT NULL REFERENCES integration_notes(id),
    author_id  UUID NOT NULL REFERENCES users(id),
    summary    TEXT NOT NULL,
    plan       TEXT,
    reason     TEXT NOT NULL,
    request_id UUID,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX integration_note_amendments_note ON integration_note_amendments (note_id, created_at);
CREATE TRIGGER integration_note_amendments_append_only BEFORE UPDATE OR DELETE ON integration_note_amendments
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER integration_note_amendments_no_truncate BEFORE TRUNCATE ON integration_note_amendments
    FOR EACH STATEMENT EXECUTE FUNCTION kapstone_append_only();
