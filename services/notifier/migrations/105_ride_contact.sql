-- Who drives the patient home (only present when that person consented to texts).
ALTER TABLE appointments
    ADD COLUMN ride_contact_name  text,
    ADD COLUMN ride_contact_phone text;

-- The booking version that set the appointment's times (status changes bump `version` too):
-- a text planned for another schedule version quotes a stale time.
ALTER TABLE appointments ADD COLUMN schedule_version integer;
UPDATE appointments SET schedule_version = version;
ALTER TABLE appointments ALTER COLUMN schedule_version SET NOT NULL;
