-- How the ride contact's consent to texts was last withdrawn or given again by text (their
-- number texted STOP, then START), so that staff can see why a ride contact is no longer
-- texted. NULL: as given when the patient was registered.
ALTER TABLE patients ADD COLUMN ride_contact_consent_source text;
