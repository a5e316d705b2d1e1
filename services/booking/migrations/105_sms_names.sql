-- A clinic's and a site's short name for texts (optional: texts use the name without one).
ALTER TABLE clinics ADD COLUMN sms_name text;
ALTER TABLE sites ADD COLUMN sms_name text;
