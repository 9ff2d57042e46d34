-- A patient's open safety alerts by an index of their own. The chart reads them on every view
-- (`store::patients::chart_head`), and `safety_alerts_open` leads with the clinic: without this
-- index each view walked every open alert of the clinic to find the patient's (one in the demo;
-- hundreds in a clinic that leaves alerts unacknowledged).
CREATE INDEX safety_alerts_by_patient ON safety_alerts (patient_id, acknowledged_at, raised_at);
