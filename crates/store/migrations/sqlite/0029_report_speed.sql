-- Reports at network scale (issue 9: 100,000 patients, 1,000,000 questionnaire responses,
-- 2,000,000 vitals; each report under 300 ms).

-- A patient's pathway stage (KAP-SPEC 2.1) as far as stored rows tell it: the latest side state
-- (on hold, withdrawn, completed), an active treatment course (treatment), the latest signed
-- decision (not eligible; eligible but no course yet: consent and preparation), a consultation
-- recorded (eligibility), else referral. Each lookup is one index probe.
CREATE VIEW patient_stage_now AS
SELECT p.id AS patient_id, p.clinic_id AS clinic_id, CASE
    (SELECT e.event FROM pathway_events e WHERE e.patient_id = p.id ORDER BY e.id DESC LIMIT 1)
    WHEN 'hold' THEN 'on_hold' WHEN 'withdraw' THEN 'withdrawn' WHEN 'complete' THEN 'completed'
    ELSE CASE
        WHEN EXISTS (SELECT 1 FROM treatment_courses t WHERE t.patient_id = p.id AND t.status = 'active') THEN 'treatment'
        ELSE CASE (SELECT d.verdict FROM eligibility_decisions d WHERE d.patient_id = p.id
                   ORDER BY d.signed_at DESC, d.id DESC LIMIT 1)
            WHEN 'not_eligible' THEN 'ineligible'
            WHEN 'eligible' THEN 'consent_preparation'
            ELSE CASE WHEN EXISTS (SELECT 1 FROM consultations c WHERE c.patient_id = p.id) THEN 'eligibility'
                 ELSE 'referral' END
        END
    END
END AS stage
FROM patients p;
CREATE INDEX eligibility_decisions_latest ON eligibility_decisions (patient_id, signed_at, id, verdict);
CREATE INDEX treatment_courses_by_patient_status ON treatment_courses (patient_id, status);

-- Each patient's stage, kept by triggers on every row that decides it, so the dashboard counts
-- patients by stage from one index instead of reading four tables per patient. Derived data: not
-- exported (an import rebuilds it through the same triggers).
CREATE TABLE patient_stages (
    patient_id BLOB PRIMARY KEY NOT NULL REFERENCES patients(id),
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    stage      TEXT NOT NULL
);
CREATE INDEX patient_stages_by_clinic ON patient_stages (clinic_id, stage);
INSERT INTO patient_stages (patient_id, clinic_id, stage) SELECT patient_id, clinic_id, stage FROM patient_stage_now WHERE true;

CREATE TRIGGER patients_stage AFTER INSERT ON patients
BEGIN
    INSERT INTO patient_stages (patient_id, clinic_id, stage) VALUES (NEW.id, NEW.clinic_id, 'referral')
    ON CONFLICT (patient_id) DO NOTHING;
END;
CREATE TRIGGER consultations_stage AFTER INSERT ON consultations
BEGIN
    INSERT INTO patient_stages (patient_id, clinic_id, stage)
    SELECT patient_id, clinic_id, stage FROM patient_stage_now WHERE patient_id = NEW.patient_id
    ON CONFLICT (patient_id) DO UPDATE SET stage = excluded.stage;
END;
CREATE TRIGGER eligibility_decisions_stage AFTER INSERT ON eligibility_decisions
BEGIN
    INSERT INTO patient_stages (patient_id, clinic_id, stage)
    SELECT patient_id, clinic_id, stage FROM patient_stage_now WHERE patient_id = NEW.patient_id
    ON CONFLICT (patient_id) DO UPDATE SET stage = excluded.stage;
END;
CREATE TRIGGER pathway_events_stage AFTER INSERT ON pathway_events
BEGIN
    INSERT INTO patient_stages (patient_id, clinic_id, stage)
    SELECT patient_id, clinic_id, stage FROM patient_stage_now WHERE patient_id = NEW.patient_id
    ON CONFLICT (patient_id) DO UPDATE SET stage = excluded.stage;
END;
CREATE TRIGGER treatment_courses_stage AFTER INSERT ON treatment_courses
BEGIN
    INSERT INTO patient_stages (patient_id, clinic_id, stage)
    SELECT patient_id, clinic_id, stage FROM patient_stage_now WHERE patient_id = NEW.patient_id
    ON CONFLICT (patient_id) DO UPDATE SET stage = excluded.stage;
END;
CREATE TRIGGER treatment_courses_status_stage AFTER UPDATE OF status ON treatment_courses
BEGIN
    INSERT INTO patient_stages (patient_id, clinic_id, stage)
    SELECT patient_id, clinic_id, stage FROM patient_stage_now WHERE patient_id = NEW.patient_id
    ON CONFLICT (patient_id) DO UPDATE SET stage = excluded.stage;
END;

-- The dashboard's end-of-induction cohort (each patient's first dose, with its protocol and place)
-- and the sessions held in a period, read from the index alone; the end of induction (a patient's
-- first course review); REMS forms owed (the sessions of one protocol).
CREATE INDEX dosing_sessions_first_dose_of ON dosing_sessions (clinic_id, patient_id, dose_started_at, protocol_id, location_id);
DROP INDEX dosing_sessions_first_dose;
CREATE INDEX dosing_sessions_doses ON dosing_sessions (clinic_id, dose_started_at, protocol_id, location_id);
DROP INDEX dosing_sessions_by_dose;
CREATE INDEX dosing_sessions_by_protocol ON dosing_sessions (clinic_id, protocol_id, dose_started_at);
CREATE INDEX course_reviews_by_patient ON course_reviews (patient_id, reviewed_at);

-- A location's ledger in a date range: the first and last entry of the range in chain order come
-- from the index alone, and the entries are read in chain order between them.
CREATE INDEX cs_ledger_by_time_seq ON cs_ledger_entries (location_id, occurred_at, seq);
DROP INDEX cs_ledger_by_time;
