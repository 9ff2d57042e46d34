-- The patient's journal (portal). Private by default: only the patient reads a private entry.
-- A shared entry (`shared_at` set) is read by the care team and is frozen: its text never
-- changes and it is not deleted (triggers); sharing may be withdrawn until someone on the team
-- has read it (`first_read_at`), then it stays shared. The text is never copied to logs or audit.
CREATE TABLE journal_entries (
    id            UUID PRIMARY KEY NOT NULL,
    clinic_id     UUID NOT NULL REFERENCES clinics(id),
    patient_id    UUID NOT NULL REFERENCES patients(id),
    session_id    UUID REFERENCES dosing_sessions(id),
    prompt_id     TEXT,
    body          TEXT NOT NULL,
    written_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    shared_at     TIMESTAMPTZ,
    first_read_by UUID REFERENCES users(id),
    first_read_at TIMESTAMPTZ,
    CHECK ((first_read_by IS NULL) = (first_read_at IS NULL)),
    CHECK (first_read_at IS NULL OR shared_at IS NOT NULL)
);
CREATE INDEX journal_entries_patient ON journal_entries (clinic_id, patient_id, written_at);
CREATE INDEX journal_entries_queue ON journal_entries (clinic_id, shared_at, first_read_at);
CREATE FUNCTION kapstone_journal_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a shared journal entry is frozen';
END;
$$;
CREATE TRIGGER journal_entries_shared_frozen BEFORE UPDATE ON journal_entries
    FOR EACH ROW WHEN (OLD.shared_at IS NOT NULL AND (NEW.body IS DISTINCT FROM OLD.body
        OR NEW.patient_id IS DISTINCT FROM OLD.patient_id OR NEW.session_id IS DISTINCT FROM OLD.session_id
        OR NEW.prompt_id IS DISTINCT FROM OLD.prompt_id))
    EXECUTE FUNCTION kapstone_journal_frozen();
CREATE TRIGGER journal_entries_read_stays_shared BEFORE UPDATE ON journal_entries
    FOR EACH ROW WHEN (OLD.first_read_at IS NOT NULL AND (NEW.shared_at IS NULL
        OR NEW.first_read_at IS DISTINCT FROM OLD.first_read_at))
    EXECUTE FUNCTION kapstone_journal_frozen();
CREATE TRIGGER journal_entries_shared_no_delete BEFORE DELETE ON journal_entries
    FOR EACH ROW WHEN (OLD.shared_at IS NOT NULL) EXECUTE FUNCTION kapstone_journal_frozen();
