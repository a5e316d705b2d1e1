-- Every query that reads tenant data takes the clinic id: a row of another network is
-- simply not found.

-- name: insert_clinic
INSERT INTO clinics (id, name, phone, sms_name) VALUES ($1, $2, $3, $4)
RETURNING id, name, sms_name, phone, created_at;

-- name: get_clinic
SELECT id, name, sms_name, phone, created_at FROM clinics WHERE id = $1;

-- name: insert_api_key
INSERT INTO api_keys (id, clinic_id, key_hash, role, label) VALUES ($1, $2, $3, $4, $5)
RETURNING id, clinic_id, role, label, created_at;

-- name: insert_site
INSERT INTO sites (id, clinic_id, name, address, phone, timezone, default_language, region,
                   sms_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, clinic_id, name, sms_name, address, phone, timezone, default_language, region,
          created_at;

-- name: insert_site_hours
INSERT INTO site_hours (site_id, weekday, opens, closes)
SELECT $1, unnest($2::smallint[]), unnest($3::time[]), unnest($4::time[]);

-- name: get_site
SELECT s.*, c.name AS clinic_name, c.sms_name AS clinic_sms_name, c.phone AS clinic_phone
FROM sites s JOIN clinics c ON c.id = s.clinic_id
WHERE s.id = $1 AND s.clinic_id = $2;

-- name: site_hours
SELECT weekday, opens, closes FROM site_hours WHERE site_id = $1 ORDER BY weekday, opens;

-- name: list_sites
SELECT id, clinic_id, name, sms_name, address, phone, timezone, default_language, region,
       created_at
FROM sites WHERE clinic_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id LIMIT $4;

-- name: insert_closure
INSERT INTO site_closures (id, site_id, first_day, last_day, reason) VALUES ($1, $2, $3, $4, $5)
RETURNING id, site_id, first_day, last_day, reason;

-- name: closures_between
SELECT first_day, last_day FROM site_closures
WHERE site_id = $1 AND last_day >= $2::date AND first_day <= $3::date;

-- name: insert_room
INSERT INTO rooms (id, clinic_id, site_id, name) VALUES ($1, $2, $3, $4)
RETURNING id, clinic_id, site_id, name, created_at;

-- name: rooms_of_site
SELECT id, site_id, name FROM rooms WHERE site_id = $1 ORDER BY name, id;

-- name: insert_provider
INSERT INTO providers (id, clinic_id, name) VALUES ($1, $2, $3)
RETURNING id, clinic_id, name, created_at;

-- name: insert_provider_hours
INSERT INTO provider_hours (provider_id, site_id, weekday, starts, ends)
SELECT $1, unnest($2::uuid[]), unnest($3::smallint[]), unnest($4::time[]), unnest($5::time[]);

-- name: list_providers
SELECT id, clinic_id, name, created_at FROM providers
WHERE clinic_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id LIMIT $4;

-- name: provider_hours_at_site
SELECT provider_id, weekday, starts, ends FROM provider_hours WHERE site_id = $1;

-- name: sites_in_clinic
SELECT count(*) FROM sites WHERE clinic_id = $1 AND id = ANY($2::uuid[]);

-- name: insert_patient
INSERT INTO patients (id, clinic_id, given_name, family_name, phone_e164, language,
                      sms_consent, sms_consent_at, sms_consent_source, ride_contact_name,
                      ride_contact_phone, ride_contact_consent, ride_contact_consent_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *;

-- name: get_patient
SELECT * FROM patients WHERE id = $1 AND clinic_id = $2;

-- name: get_patient_for_update
SELECT * FROM patients WHERE id = $1 AND clinic_id = $2 FOR UPDATE;

-- name: list_patients
SELECT * FROM patients WHERE clinic_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id LIMIT $4;

-- name: set_sms_consent
UPDATE patients SET sms_consent = $3, sms_consent_at = now(), sms_consent_source = $4
WHERE id = $1 AND clinic_id = $2
RETURNING *;

-- name: restore_sms_consent
-- The patient's number texted START: consent comes back only if an opt-out by text ($4)
-- took it (a family phone's START never gives consent a sibling did not give).
UPDATE patients SET sms_consent = true, sms_consent_at = now(), sms_consent_source = $3
WHERE id = $1 AND clinic_id = $2 AND NOT sms_consent AND sms_consent_source = $4
RETURNING *;

-- name: session_type
SELECT code, is_dosing, duration_minutes, recovery_minutes, fasting_rule
FROM clinic_session_types WHERE clinic_id = $1 AND code = $2;

-- name: session_types
SELECT code, is_dosing, duration_minutes, recovery_minutes, fasting_rule
FROM clinic_session_types WHERE clinic_id = $1 ORDER BY code;

-- name: upsert_session_type_override
INSERT INTO session_type_overrides (clinic_id, code, duration_minutes, recovery_minutes, fasting_rule)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (clinic_id, code) DO UPDATE
    SET duration_minutes = EXCLUDED.duration_minutes, recovery_minutes = EXCLUDED.recovery_minutes,
        fasting_rule = EXCLUDED.fasting_rule;

-- name: booking
-- Everything about a booking that its views and events need.
SELECT b.*, s.name AS site_name, s.sms_name AS site_sms_name, s.address AS site_address,
       s.phone AS site_phone, s.timezone AS site_timezone, s.region AS site_region,
       c.name AS clinic_name, c.sms_name AS clinic_sms_name,
       c.phone AS clinic_phone, p.language AS patient_language, p.ride_contact_name, p.ride_contact_phone,
       p.ride_contact_consent, st.fasting_rule
FROM bookings b
JOIN sites s ON s.id = b.site_id
JOIN clinics c ON c.id = b.clinic_id
JOIN patients p ON p.id = b.patient_id
JOIN clinic_session_types st ON st.clinic_id = b.clinic_id AND st.code = b.session_type
WHERE b.id = $1 AND b.clinic_id = $2;

-- name: lock_booking
SELECT id, status, version FROM bookings WHERE id = $1 AND clinic_id = $2 FOR UPDATE;

-- name: move_booking
UPDATE bookings SET starts_at = $2, ends_at = $3, occupied_until = $4, room_id = $5,
                    provider_id = $6, version = version + 1, confirmed_at = NULL,
                    reschedule_requested_at = NULL, updated_at = now()
WHERE id = $1;

-- name: set_status
UPDATE bookings SET status = $2, version = version + 1, updated_at = now(),
                    cancel_reason = coalesce($3, cancel_reason),
                    cancelled_by = coalesce($4, cancelled_by)
WHERE id = $1;

-- name: set_ride
UPDATE bookings SET ride_status = $2, ride_driver_name = $3, updated_at = now() WHERE id = $1;

-- name: set_confirmed
UPDATE bookings SET confirmed_at = now(), updated_at = now() WHERE id = $1 AND confirmed_at IS NULL;

-- name: set_reschedule_requested
UPDATE bookings SET reschedule_requested_at = now(), updated_at = now() WHERE id = $1;

-- name: list_bookings
SELECT id FROM bookings
WHERE clinic_id = $1
  AND ($2::uuid IS NULL OR patient_id = $2)
  AND ($3::uuid IS NULL OR site_id = $3)
  AND ($4::timestamptz IS NULL OR starts_at >= $4)
  AND ($5::timestamptz IS NULL OR starts_at < $5)
  AND ($6::text IS NULL OR status = $6)
  AND (starts_at, id) > ($7, $8)
ORDER BY starts_at, id LIMIT $9;

-- name: bookings_needing_staff
SELECT id FROM bookings
WHERE clinic_id = $1 AND status = 'booked' AND starts_at > now()
  AND (reschedule_requested_at IS NOT NULL OR (is_dosing AND ride_status <> 'confirmed'))
ORDER BY starts_at, id LIMIT $2;

-- name: busy_at_site
-- Busy times at the site (each booking holds a room and a provider), plus those of the
-- site's providers at other sites, as epoch seconds.
SELECT room_id, provider_id, extract(epoch FROM starts_at)::float8 AS starts,
       extract(epoch FROM occupied_until)::float8 AS ends
FROM bookings
WHERE site_id = $1 AND starts_at < $3 AND occupied_until > $2 AND status IN ('booked', 'arrived')
UNION ALL
SELECT NULL, provider_id, extract(epoch FROM starts_at)::float8, extract(epoch FROM occupied_until)::float8
FROM bookings
WHERE site_id <> $1 AND provider_id IN (SELECT provider_id FROM provider_hours WHERE site_id = $1)
  AND status IN ('booked', 'arrived') AND tstzrange(starts_at, occupied_until) && tstzrange($2, $3);

-- name: insert_waitlist_entry
INSERT INTO waitlist_entries (id, clinic_id, patient_id, site_id, session_type, window_start, window_end)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: list_waitlist
SELECT * FROM waitlist_entries
WHERE clinic_id = $1 AND ($2::uuid IS NULL OR site_id = $2) AND status = 'waiting'
  AND (created_at, id) > ($3, $4)
ORDER BY created_at, id LIMIT $5;

-- name: waiting_for_slot
SELECT w.id, w.patient_id, p.language FROM waitlist_entries w JOIN patients p ON p.id = w.patient_id
WHERE w.site_id = $1 AND w.session_type = $2 AND w.status = 'waiting'
  AND w.window_start <= $3 AND $3 < w.window_end AND w.patient_id <> $4
ORDER BY w.created_at, w.id;

-- name: insert_offer
INSERT INTO waitlist_offers (id, clinic_id, site_id, room_id, provider_id, session_type, starts_at,
                             freed_by, candidates)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *;

-- name: lock_offer
SELECT * FROM waitlist_offers WHERE id = $1 AND clinic_id = $2 FOR UPDATE;

-- name: take_offer
UPDATE waitlist_offers SET status = 'taken', taken_by = $2, booking_id = $3 WHERE id = $1;

-- name: waitlist_booked
UPDATE waitlist_entries SET status = 'booked'
WHERE patient_id = $1 AND site_id = $2 AND session_type = $3 AND status = 'waiting';

-- name: booking_context
-- One round trip for what booking a session needs to know (in a transaction, the patient row
-- is locked, so one patient's series are decided one at a time). NULL site/type columns: unknown.
SELECT p.id AS patient_id, p.clinic_id, p.language AS patient_language, p.sms_consent,
       p.ride_contact_name, p.ride_contact_phone, p.ride_contact_consent,
       s.id AS site_id, s.name AS site_name, s.sms_name AS site_sms_name,
       s.address AS site_address, s.phone AS site_phone, s.timezone AS site_timezone,
       s.region AS site_region, c.name AS clinic_name, c.sms_name AS clinic_sms_name,
       c.phone AS clinic_phone, st.code, st.is_dosing, st.duration_minutes, st.recovery_minutes, st.fasting_rule
FROM patients p
JOIN clinics c ON c.id = p.clinic_id
LEFT JOIN sites s ON s.id = $2 AND s.clinic_id = p.clinic_id
LEFT JOIN clinic_session_types st ON st.clinic_id = p.clinic_id AND st.code = $4
WHERE p.id = $3 AND p.clinic_id = $1
FOR UPDATE OF p;

-- name: placement
-- Whether a time fits a site's rules, and (when not given) the free room and provider.
-- $1 site, $2 clinic, $3 local day, $4 weekday, $5 local start, $6 local end,
-- $7/$8 UTC start/end, $9 room or NULL, $10 provider or NULL, $11 booking being moved,
-- $12/$13 preferred room/provider.
SELECT
    EXISTS (SELECT 1 FROM site_closures
            WHERE site_id = $1 AND $3::date BETWEEN first_day AND last_day) AS closed,
    EXISTS (SELECT 1 FROM site_hours WHERE site_id = $1 AND weekday = $4
            AND opens <= $5::time AND $6::time <= closes) AS open,
    ($9::uuid IS NULL OR EXISTS (SELECT 1 FROM rooms WHERE id = $9 AND clinic_id = $2
                                 AND site_id = $1)) AS room_known,
    ($10::uuid IS NULL OR EXISTS (SELECT 1 FROM providers WHERE id = $10 AND clinic_id = $2))
        AS provider_known,
    ($10::uuid IS NULL OR EXISTS (SELECT 1 FROM provider_hours WHERE provider_id = $10
        AND site_id = $1 AND weekday = $4 AND starts <= $5::time AND $6::time <= ends))
        AS provider_works,
    CASE WHEN $9::uuid IS NULL THEN (
        SELECT r.id FROM rooms r
        WHERE r.site_id = $1 AND NOT EXISTS (
            SELECT 1 FROM bookings b WHERE b.room_id = r.id AND b.status IN ('booked', 'arrived')
              AND tstzrange(b.starts_at, b.occupied_until) && tstzrange($7, $8) AND b.id <> $11)
        ORDER BY r.id = $12 DESC, r.name, r.id LIMIT 1) END AS free_room,
    CASE WHEN $10::uuid IS NULL THEN (
        SELECT h.provider_id FROM provider_hours h JOIN providers p ON p.id = h.provider_id
        WHERE h.site_id = $1 AND h.weekday = $4 AND h.starts <= $5::time AND $6::time <= h.ends
          AND NOT EXISTS (
            SELECT 1 FROM bookings b WHERE b.provider_id = h.provider_id
              AND b.status IN ('booked', 'arrived')
              AND tstzrange(b.starts_at, b.occupied_until) && tstzrange($7, $8) AND b.id <> $11)
        ORDER BY h.provider_id = $13 DESC, p.name, p.id LIMIT 1) END AS free_provider;

-- name: insert_booking_with_event
-- The booking and its SessionBooked event (into the outbox) in one round trip. No row back:
-- an exclusion constraint (room, provider or patient busy) stopped it, and no event either.
WITH booked AS (
    INSERT INTO bookings (id, clinic_id, site_id, room_id, provider_id, patient_id, series_id,
                          session_type, is_dosing, starts_at, ends_at, occupied_until)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT DO NOTHING
    RETURNING *
), announced AS (
    INSERT INTO outbox (topic, key, value, event_id, event_type)
    SELECT $13, $14, $15, $16, $17 FROM booked
)
SELECT * FROM booked;

-- name: what_conflicts
-- Which of room, provider, patient is busy in a time range, and with which booking.
SELECT CASE WHEN room_id = $3 THEN 'room' WHEN provider_id = $4 THEN 'provider' ELSE 'patient' END
           AS resource, id
FROM bookings
WHERE status IN ('booked', 'arrived') AND tstzrange(starts_at, occupied_until) && tstzrange($1, $2)
  AND (room_id = $3 OR provider_id = $4 OR patient_id = $5)
ORDER BY (room_id = $3) DESC, (provider_id = $4) DESC
LIMIT 1;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND clinic_id = $2 AND revoked_at IS NULL
RETURNING id;

-- name: set_ride_contact_consent
-- The ride contact's number ($3) texted STOP ($4 false) or START ($4 true): their consent
-- follows, if they are still this patient's ride contact and it changes. An opt-in gives
-- back only a consent an opt-out by text took ($6: that source).
UPDATE patients SET ride_contact_consent = $4, ride_contact_consent_at = now(),
                    ride_contact_consent_source = $5
WHERE id = $1 AND clinic_id = $2 AND ride_contact_phone = $3 AND ride_contact_consent <> $4
  AND ($4 = false OR ride_contact_consent_source = $6)
RETURNING *;
