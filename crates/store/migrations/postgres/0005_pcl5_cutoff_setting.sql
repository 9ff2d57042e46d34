-- KAP-SPEC 7.3: the PCL-5 cut-point for a provisional diagnosis is CONFIG-DEFAULT 33 (31 lenient).
ALTER TABLE clinic_settings ADD COLUMN pcl5_cutoff INTEGER NOT NULL DEFAULT 33;
