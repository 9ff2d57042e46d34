-- The preparation of one dosing appointment (KAP-SPEC 2.1 stage 5): the ride home, the
-- patient's intention, the prescriber's medication instructions, and when the patient
-- acknowledged the pre-session instructions. One row per appointment, changed as the items are
-- done; every change is audited.
CREATE TABLE appointment_preparation (
    appointment_id          BLOB PRIMARY KEY REFERENCES appointments(id),
    escort_name             TEXT,
    escort_phone            TEXT,
    escort_relationship     TEXT,
    escort_confirmed_at     BIGINT,
    intention               TEXT,
    intention_written_at    BIGINT,
    medication_instructions TEXT,
    medication_by           BLOB REFERENCES users(id),
    instructions_ack_at     BIGINT,
    updated_at              BIGINT NOT NULL
);

-- A staff member's secret calendar-feed link (RFC 5545). The token is the whole credential of a
-- read-only feed of their own appointments (patients by initials); making a new link revokes
-- the old one by replacing the row.
CREATE TABLE calendar_feeds (
    user_id    BLOB PRIMARY KEY REFERENCES users(id),
    token      TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Reminders go through the outbox: each names its appointment and kind ('48h', '24h',
-- 'checkin'), and the unique index makes generating them idempotent, whatever the number of
-- server processes running the job. Delivery attempts are kept with the message.
ALTER TABLE outbox ADD COLUMN appointment_id BLOB REFERENCES appointments(id);
ALTER TABLE outbox ADD COLUMN reminder TEXT;
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE UNIQUE INDEX outbox_one_reminder ON outbox (appointment_id, reminder);

-- A patient's request, from the portal, to move or cancel an appointment; the front desk sees it
-- until the appointment is changed.
CREATE TABLE appointment_requests (
    id             BLOB PRIMARY KEY NOT NULL,
    clinic_id      BLOB NOT NULL REFERENCES clinics(id),
    appointment_id BLOB NOT NULL REFERENCES appointments(id),
    patient_id     BLOB NOT NULL REFERENCES patients(id),
    kind           TEXT NOT NULL CHECK (kind IN ('reschedule','cancel')),
    note           TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX appointment_requests_by_appointment ON appointment_requests (appointment_id);

-- When reminders go out (JSON of the domain's ReminderSettings; NULL: 48 h and 24 h before, and
-- the next-day check-in after dosing).
ALTER TABLE clinic_settings ADD COLUMN reminders TEXT;
