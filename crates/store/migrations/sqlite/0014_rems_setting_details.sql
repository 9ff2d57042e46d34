-- The SPRAVATO REMS Patient Monitoring Form (KAP-SPEC 5.6) asks for the healthcare setting's
-- address (Address 1*, Address 2, City*, State*, ZIP*) and the telephone of the HCP who conducted
-- the monitoring (Telephone*). The setting's name is the location's name and the HCP's email is
-- the account's; the form asks for nothing else about either, so nothing else is kept. NULL is
-- "not recorded yet": the form then shows the field as still to complete.
ALTER TABLE locations ADD COLUMN address_line1 TEXT;
ALTER TABLE locations ADD COLUMN address_line2 TEXT;
ALTER TABLE locations ADD COLUMN city TEXT;
ALTER TABLE locations ADD COLUMN state_code TEXT;
ALTER TABLE locations ADD COLUMN zip TEXT;
ALTER TABLE users ADD COLUMN work_phone TEXT;
