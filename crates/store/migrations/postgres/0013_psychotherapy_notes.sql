-- Psychotherapy notes (KAP-SPEC 10, 45 CFR 164.501): the therapist's own notes of a session,
-- kept apart from the medical record. This table is the separate store: no view, list, export
-- or summary of the record reads it, and every query of the application names the author, so
-- only the author's own rows are ever returned.
--
-- A note is signed when saved and never changes. A correction is a new row naming the original
-- in `amends_id` (always the original, never another amendment), with its reason; the original
-- stays as written (TV-HIP-4). Session, patient and author of an amendment are the original's.
CREATE TABLE psychotherapy_notes (
    id         UUID PRIMARY KEY NOT NULL,
    clinic_id  UUID NOT NULL REFERENCES clinics(id),
    session_id UUID NOT NULL REFERENCES dosing_sessions(id),
    patient_id UUID NOT NULL REFERENCES patients(id),
    author_id  UUID NOT NULL REFERENCES users(id),
    amends_id  UUID REFERENCES psychotherapy_notes(id),
    body       TEXT NOT NULL,
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    CHECK ((amends_id IS NULL) = (reason IS NULL))
);
CREATE INDEX psychotherapy_notes_author ON psychotherapy_notes (clinic_id, author_id, session_id, created_at);
CREATE INDEX psychotherapy_notes_amends ON psychotherapy_notes (amends_id);
CREATE TRIGGER psychotherapy_notes_append_only BEFORE UPDATE OR DELETE ON psychotherapy_notes
    FOR EACH ROW EXECUTE FUNCTION kapstone_append_only();
CREATE TRIGGER psychotherapy_notes_no_truncate BEFORE TRUNCATE ON psychotherapy_notes
    FOR EACH STATEMENT EXECUTE FUNCTION kapstone_append_only();
