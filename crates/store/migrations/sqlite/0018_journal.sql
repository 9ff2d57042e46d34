-- The patient's journal (portal). Private by default: only the patient reads a private entry.
-- A shared entry (`shared_at` set) is read by the care team and is frozen: its text never
-- changes and it is not deleted (triggers); sharing may be withdrawn until someone on the team
-- has read it (`first_read_at`), then it stays shared. The text is never copied to logs or audit.
CREATE TABLE journal_entries (
    id            BLOB PRIMARY KEY NOT NULL,
    clinic_id     BLOB NOT NULL REFERENCES clinics(id),
    patient_id    BLOB NOT NULL REFERENCES patients(id),
    session_id    BLOB REFERENCES dosing_sessions(id),
    prompt_id     TEXT,
    body          TEXT NOT NULL,
    written_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    shared_at     BIGINT,
    first_read_by BLOB REFERENCES users(id),
    first_read_at BIGINT,
    CHECK ((first_read_by IS NULL) = (first_read_at IS NULL)),
    CHECK (first_read_at IS NULL OR shared_at IS NOT NULL)
);
CREATE INDEX journal_entries_patient ON journal_entries (clinic_id, patient_id, written_at);
CREATE INDEX journal_entries_queue ON journal_entries (clinic_id, shared_at, first_read_at);
CREATE TRIGGER journal_entries_shared_frozen BEFORE UPDATE ON journal_entries
WHEN OLD.shared_at IS NOT NULL AND (NEW.body IS NOT OLD.body OR NEW.patient_id IS NOT OLD.patient_id
    OR NEW.session_id IS NOT OLD.session_id OR NEW.prompt_id IS NOT OLD.prompt_id)
BEGIN SELECT RAISE(ABORT, 'a shared journal entry is frozen'); END;
CREATE TRIGGER journal_entries_read_stays_shared BEFORE UPDATE ON journal_entries
WHEN OLD.first_read_at IS NOT NULL AND (NEW.shared_at IS NULL OR NEW.first_read_at IS NOT OLD.first_read_at)
BEGIN SELECT RAISE(ABORT, 'a journal entry read by the care team stays shared'); END;
CREATE TRIGGER journal_entries_shared_no_delete BEFORE DELETE ON journal_entries
WHEN OLD.shared_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a shared journal entry is frozen'); END;
