-- Integration notes (KAP-SPEC 2.1 stage 7, KAP-SPEC 10): progress-note content of an integration
-- session, linked to the dosing session it follows. Part of the record once signed; a draft is
-- its author's and is not part of the record. This is not the psychotherapy-note store.
--
-- A draft is updated in place by its author; once `signed_at` is set the row never changes and
-- is never deleted (triggers). A correction is a row of `integration_note_amendments` naming the
-- note, with its author, time and reason; the original stays as signed (TV-HIP-4).
CREATE TABLE integration_notes (
    id         BLOB PRIMARY KEY NOT NULL,
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    session_id BLOB NOT NULL REFERENCES dosing_sessions(id),
    patient_id BLOB NOT NULL REFERENCES patients(id),
    author_id  BLOB NOT NULL REFERENCES users(id),
    summary    TEXT NOT NULL,
    plan       TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    signed_at  BIGINT
);
CREATE INDEX integration_notes_patient ON integration_notes (clinic_id, patient_id, created_at);
CREATE INDEX integration_notes_session ON integration_notes (clinic_id, session_id);
CREATE TRIGGER integration_notes_signed_no_update BEFORE UPDATE ON integration_notes
WHEN OLD.signed_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a signed integration note is immutable'); END;
CREATE TRIGGER integration_notes_signed_no_delete BEFORE DELETE ON integration_notes
WHEN OLD.signed_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a signed integration note is immutable'); END;

CREATE TABLE integration_note_amendments (
    id         BLOB PRIMARY KEY NOT NULL,
    note_id    BLOB NOT NULL REFERENCES integration_notes(id),
    author_id  BLOB NOT NULL REFERENCES users(id),
    summary    TEXT NOT NULL,
    plan       TEXT,
    reason     TEXT NOT NULL,
    request_id BLOB,
    created_at BIGINT NOT NULL
);
CREATE INDEX integration_note_amendments_note ON integration_note_amendments (note_id, created_at);
CREATE TRIGGER integration_note_amendments_no_update BEFORE UPDATE ON integration_note_amendments
BEGIN SELECT RAISE(ABORT, 'integration_note_amendments is append-only'); END;
CREATE TRIGGER integration_note_amendments_no_delete BEFORE DELETE ON integration_note_amendments
BEGIN SELECT RAISE(ABORT, 'integration_note_amendments is append-only'); END;
