-- Scheduling: where (locations with their IANA time zone, rooms and chairs), what (appointment
-- types), who works when (weekly hours in the location's civil time, and one-off exceptions),
-- and the appointments themselves, which are never deleted: cancel, no-show and reschedule
-- change the status and keep the row.
CREATE TABLE locations (
    id         BLOB PRIMARY KEY NOT NULL,
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    name       TEXT NOT NULL,
    time_zone  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (clinic_id, name)
);

CREATE TABLE rooms (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    location_id BLOB NOT NULL REFERENCES locations(id),
    name        TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  BIGINT NOT NULL,
    UNIQUE (location_id, name)
);

-- The type's definition is the JSON of the domain's AppointmentType (length rule, staff needs,
-- route for dosing types); a change saves a new row version so booked appointments keep theirs.
CREATE TABLE appointment_types (
    id         BLOB PRIMARY KEY NOT NULL,
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    code       TEXT NOT NULL,
    definition TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX appointment_types_active_code ON appointment_types (clinic_id, code) WHERE active;

CREATE TABLE staff_hours (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics(id),
    user_id      BLOB NOT NULL REFERENCES users(id),
    location_id  BLOB NOT NULL REFERENCES locations(id),
    weekday      INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1440),
    end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1440),
    CHECK (start_minute < end_minute)
);
CREATE INDEX staff_hours_by_user ON staff_hours (user_id);

CREATE TABLE staff_hour_exceptions (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics(id),
    user_id      BLOB NOT NULL REFERENCES users(id),
    on_date      TEXT NOT NULL,
    is_leave     BOOLEAN NOT NULL,
    start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1440),
    end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1440),
    note         TEXT,
    created_by   BLOB NOT NULL REFERENCES users(id),
    created_at   BIGINT NOT NULL,
    CHECK (start_minute < end_minute)
);
CREATE INDEX staff_hour_exceptions_by_user ON staff_hour_exceptions (user_id, on_date);

-- A treatment course started from a template (KAP-SPEC 4.4) with the clinic's options (JSON);
-- its plan is recomputed from these, its progress read from the appointments linked to it.
CREATE TABLE treatment_courses (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    patient_id  BLOB NOT NULL REFERENCES patients(id),
    template    TEXT NOT NULL,
    first_date  TEXT NOT NULL,
    options     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active','completed','stopped')),
    started_by  BLOB NOT NULL REFERENCES users(id),
    started_at  BIGINT NOT NULL
);
CREATE INDEX treatment_courses_by_patient ON treatment_courses (patient_id);

CREATE TABLE appointments (
    id                BLOB PRIMARY KEY NOT NULL,
    clinic_id         BLOB NOT NULL REFERENCES clinics(id),
    patient_id        BLOB NOT NULL REFERENCES patients(id),
    type_id           BLOB NOT NULL REFERENCES appointment_types(id),
    location_id       BLOB NOT NULL REFERENCES locations(id),
    room_id           BLOB REFERENCES rooms(id),
    start_at          BIGINT NOT NULL,
    end_at            BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('booked','cancelled','no_show','rescheduled','completed')),
    status_reason     TEXT,
    status_changed_by BLOB REFERENCES users(id),
    status_changed_at BIGINT,
    rescheduled_from  BLOB REFERENCES appointments(id),
    course_id         BLOB REFERENCES treatment_courses(id),
    created_by        BLOB NOT NULL REFERENCES users(id),
    created_at        BIGINT NOT NULL,
    CHECK (start_at < end_at)
);
CREATE INDEX appointments_by_time ON appointments (clinic_id, start_at);
CREATE INDEX appointments_by_patient ON appointments (patient_id, start_at);

CREATE TABLE appointment_staff (
    appointment_id BLOB NOT NULL REFERENCES appointments(id),
    user_id        BLOB NOT NULL REFERENCES users(id),
    PRIMARY KEY (appointment_id, user_id)
);

-- One row per resource (person, chair, patient) per 5-minute slot of a live booking. The primary
-- key is what makes a double booking impossible, whatever the number of concurrent requests or
-- server processes. Claims are released when an appointment is cancelled or rescheduled.
CREATE TABLE booking_claims (
    resource       TEXT NOT NULL,
    slot           BIGINT NOT NULL,
    appointment_id BLOB NOT NULL REFERENCES appointments(id),
    PRIMARY KEY (resource, slot)
);
CREATE INDEX booking_claims_by_appointment ON booking_claims (appointment_id);

-- Spravato REMS patient enrolment (GATE-03), recorded by staff.
CREATE TABLE rems_enrollments (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    patient_id  BLOB NOT NULL REFERENCES patients(id),
    enrolled_on TEXT NOT NULL,
    reference   TEXT,
    recorded_by BLOB NOT NULL REFERENCES users(id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX rems_enrollments_by_patient ON rems_enrollments (patient_id);
