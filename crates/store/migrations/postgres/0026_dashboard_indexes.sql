-- The clinic dashboard's overdue-measures count (issue 7): assignments of a clinic by due time.
CREATE INDEX measure_assignments_due ON measure_assignments (clinic_id, due_by);
