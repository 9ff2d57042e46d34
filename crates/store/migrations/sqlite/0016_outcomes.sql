-- Measured outcomes and the course review (issue 7; KAP-SPEC 2.1 stages 8-9, 7.1-7.3).

-- The clinic's outcome definitions (JSON of the domain's OutcomeSettings: baseline rule, response
-- and remission thresholds, "response only from a moderate baseline") and its re-review interval
-- (JSON of ReviewSettings). NULL means the spec's CONFIG-DEFAULTs. Versioned with the other
-- clinic settings: a course review records the version it was decided under.
ALTER TABLE clinic_settings ADD COLUMN outcomes TEXT;
ALTER TABLE clinic_settings ADD COLUMN course_review TEXT;

-- A prescriber's course review: continue / modify / stop with the reason, the options in force
-- after it, the next review, and the outcome summary as it was shown. Never changed or deleted;
-- the course row carries the resulting status and options.
CREATE TABLE course_reviews (
    id               BLOB PRIMARY KEY NOT NULL,
    clinic_id        BLOB NOT NULL REFERENCES clinics(id),
    course_id        BLOB NOT NULL REFERENCES treatment_courses(id),
    patient_id       BLOB NOT NULL REFERENCES patients(id),
    decision         TEXT NOT NULL CHECK (decision IN ('continue','modify','stop')),
    options          TEXT NOT NULL,
    reason           TEXT NOT NULL,
    next_review_due  TEXT,
    outcome_summary  TEXT NOT NULL,
    settings_version BIGINT NOT NULL,
    reviewed_by      BLOB NOT NULL REFERENCES users(id),
    reviewed_at      BIGINT NOT NULL
);
CREATE INDEX course_reviews_by_course ON course_reviews (course_id, reviewed_at);
CREATE TRIGGER course_reviews_no_update BEFORE UPDATE ON course_reviews
BEGIN SELECT RAISE(ABORT, 'course_reviews is append-only'); END;
CREATE TRIGGER course_reviews_no_delete BEFORE DELETE ON course_reviews
BEGIN SELECT RAISE(ABORT, 'course_reviews is append-only'); END;

-- The outcome chart and the dashboard: a patient's scores of one instrument in time order (the
-- baseline and follow-up of each patient are one index probe each), the first dose of each
-- patient, sessions held in a period, active courses.
CREATE INDEX questionnaire_responses_outcomes ON questionnaire_responses (patient_id, instrument, submitted_at, total);
CREATE INDEX dosing_sessions_first_dose ON dosing_sessions (clinic_id, patient_id, dose_started_at);
CREATE INDEX dosing_sessions_by_dose ON dosing_sessions (clinic_id, dose_started_at);
CREATE INDEX treatment_courses_by_status ON treatment_courses (clinic_id, status, patient_id);
