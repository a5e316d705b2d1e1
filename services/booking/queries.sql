-- name: insert_clinic
INSERT INTO clinics (id, name, phone) VALUES ($1, $2, $3)
RETURNING id, name, phone, created_at;

-- name: insert_site
INSERT INTO sites (id, clinic_id, name, address, phone, timezone, default_language)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, clinic_id, name, address, phone, timezone, default_language;

-- name: insert_patient
INSERT INTO patients (id, clinic_id, given_name, family_name, phone_e164, language,
                      sms_consent, sms_consent_at, sms_consent_source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, clinic_id, given_name, family_name, phone_e164, language, sms_consent,
          sms_consent_at, sms_consent_source;

-- name: clinic_exists
SELECT EXISTS (SELECT 1 FROM clinics WHERE id = $1);

-- name: get_patient
SELECT * FROM patients WHERE id = $1;

-- name: get_site_with_clinic
SELECT s.*, c.name AS clinic_name, c.phone AS clinic_phone
FROM sites s JOIN clinics c ON c.id = s.clinic_id WHERE s.id = $1;

-- name: get_session_type
SELECT * FROM session_types WHERE code = $1;

-- name: insert_booking
INSERT INTO bookings (id, clinic_id, site_id, patient_id, session_type, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: get_booking
SELECT b.*, s.timezone AS site_timezone
FROM bookings b JOIN sites s ON s.id = b.site_id WHERE b.id = $1;

-- name: list_clinics
SELECT id, name, phone, created_at FROM clinics ORDER BY created_at, id;

-- name: list_sites
SELECT id, clinic_id, name, address, phone, timezone, default_language
FROM sites WHERE clinic_id = $1 ORDER BY name, id;

-- name: list_patients
SELECT id, clinic_id, given_name, family_name, phone_e164, language, sms_consent,
       sms_consent_at, sms_consent_source
FROM patients WHERE clinic_id = $1 ORDER BY family_name, given_name, id;
