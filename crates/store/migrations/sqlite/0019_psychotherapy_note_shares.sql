-- Sharing a psychotherapy note with one named colleague (KAP-SPEC 10, issue 7): the author of an
-- original note names one therapist or prescriber of the clinic, who may then read that note (and
-- its amendments) and nothing else of the author's. The author may withdraw the share; the row is
-- kept with the time it was withdrawn. At most one live share per note.
CREATE TABLE psychotherapy_note_shares (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics(id),
    note_id      BLOB NOT NULL REFERENCES psychotherapy_notes(id),
    author_id    BLOB NOT NULL REFERENCES users(id),
    colleague_id BLOB NOT NULL REFERENCES users(id),
    shared_at    BIGINT NOT NULL,
    withdrawn_at BIGINT,
    CHECK (author_id <> colleague_id)
);
CREATE UNIQUE INDEX psychotherapy_note_shares_live ON psychotherapy_note_shares (note_id) WHERE withdrawn_at IS NULL;
CREATE INDEX psychotherapy_note_shares_colleague ON psychotherapy_note_shares (clinic_id, colleague_id, withdrawn_at);
