-- What texts call the clinic and the site when they set a short name for texts (NULL: their
-- names), and the site's phone for slot offers (texts quote the site's number; NULL for
-- offers from before it was carried: the clinic's).
ALTER TABLE appointments ADD COLUMN clinic_sms_name text, ADD COLUMN site_sms_name text;
ALTER TABLE waitlist_offers ADD COLUMN clinic_sms_name text, ADD COLUMN site_sms_name text,
    ADD COLUMN site_phone text;
