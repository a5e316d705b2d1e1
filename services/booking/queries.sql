-- The booking service's named queries, loaded by services/booking/store.py (the only module
-- that uses them; it turns their rows into the frozen dataclasses of services/booking/model.py).
--
-- Tenancy: a query that finds a network's row by an id from a request or an event takes the
-- clinic id too, so a row of another network is simply not found. Queries keyed by ids
-- already found that way (a site's hours once the site was found, the rooms and providers
-- placement checked) do not repeat it; nor do sign-in, enrolment and sessions (an email or an
-- enrolment code finds one person whatever their network, a token names its session), nor
-- the counts of failed sign-ins.

-- === The network: clinics, API keys, sites, rooms, providers, session types =============

-- name: insert_clinic
INSERT INTO clinics (id, name, phone, sms_name, slug) VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, sms_name, phone, created_at, slug;

-- name: get_clinic
SELECT id, name, sms_name, phone, created_at, slug FROM clinics WHERE id = $1;

-- name: slug_taken
SELECT EXISTS (SELECT 1 FROM clinics WHERE slug = $1);

-- name: insert_api_key
INSERT INTO api_keys (id, clinic_id, key_hash, role, label) VALUES ($1, $2, $3, $4, $5)
RETURNING id, clinic_id, role, label, created_at;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND clinic_id = $2 AND revoked_at IS NULL
RETURNING id;

-- fragment: site_columns
id, clinic_id, name, sms_name, address, phone, timezone, default_language, region, created_at

-- name: insert_site
INSERT INTO sites (id, clinic_id, name, address, phone, timezone, default_language, region,
                   sms_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING
-- include: site_columns
;

-- name: get_site
SELECT
-- include: site_columns
FROM sites WHERE id = $1 AND clinic_id = $2;

-- name: list_sites
SELECT
-- include: site_columns
FROM sites WHERE clinic_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id LIMIT $4;

-- name: insert_site_hours
INSERT INTO site_hours (site_id, weekday, opens, closes)
SELECT $1, unnest($2::smallint[]), unnest($3::time[]), unnest($4::time[]);

-- name: site_hours
SELECT weekday, opens, closes FROM site_hours WHERE site_id = $1 ORDER BY weekday, opens;

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
INSERT INTO providers (id, clinic_id, name, consultations) VALUES ($1, $2, $3, $4)
RETURNING id, clinic_id, name, created_at, consultations;

-- name: set_provider_consultations
UPDATE providers SET consultations = $3 WHERE id = $1 AND clinic_id = $2
RETURNING id, clinic_id, name, created_at, consultations;

-- name: insert_provider_hours
INSERT INTO provider_hours (provider_id, site_id, weekday, starts, ends)
SELECT $1, unnest($2::uuid[]), unnest($3::smallint[]), unnest($4::time[]), unnest($5::time[]);

-- name: list_providers
SELECT id, clinic_id, name, created_at, consultations FROM providers
WHERE clinic_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id LIMIT $4;

-- name: provider_hours_at_site
SELECT provider_id, weekday, starts, ends FROM provider_hours WHERE site_id = $1;

-- name: sites_in_clinic
SELECT count(*) FROM sites WHERE clinic_id = $1 AND id = ANY($2::uuid[]);

-- name: session_type
SELECT code, is_dosing, duration_minutes, recovery_minutes, fasting_rule, modes, route,
       prep_items::text AS prep_items
FROM clinic_session_types WHERE clinic_id = $1 AND code = $2;

-- name: session_types
SELECT code, is_dosing, duration_minutes, recovery_minutes, fasting_rule, modes, route,
       prep_items::text AS prep_items
FROM clinic_session_types WHERE clinic_id = $1 ORDER BY code;

-- name: upsert_session_type_override
INSERT INTO session_type_overrides (clinic_id, code, duration_minutes, recovery_minutes, fasting_rule)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (clinic_id, code) DO UPDATE
    SET duration_minutes = EXCLUDED.duration_minutes, recovery_minutes = EXCLUDED.recovery_minutes,
        fasting_rule = EXCLUDED.fasting_rule;

-- name: set_prep_items
-- A network's own prep items for a session type ($3: JSON {"en": ..., "fr": ..., "es": ...}).
INSERT INTO session_type_overrides (clinic_id, code, prep_items) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (clinic_id, code) DO UPDATE SET prep_items = EXCLUDED.prep_items;

-- name: set_remote_ways
-- A network's number for phone visits and its video link template.
UPDATE clinics SET call_in_phone = $2, video_link_template = $3 WHERE id = $1
RETURNING id, call_in_phone, video_link_template;

-- === Patients ===========================================================================

-- fragment: patient_columns
id, clinic_id, given_name, family_name, phone_e164, language, sms_consent, sms_consent_at,
sms_consent_source, ride_contact_name, ride_contact_phone, ride_contact_consent,
ride_contact_consent_at, created_at, ride_contact_consent_source, timezone

-- name: insert_patient
INSERT INTO patients (id, clinic_id, given_name, family_name, phone_e164, language,
                      sms_consent, sms_consent_at, sms_consent_source, ride_contact_name,
                      ride_contact_phone, ride_contact_consent, ride_contact_consent_at,
                      timezone)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING
-- include: patient_columns
;

-- name: get_patient
SELECT
-- include: patient_columns
FROM patients WHERE id = $1 AND clinic_id = $2;

-- name: list_patients
SELECT
-- include: patient_columns
FROM patients WHERE clinic_id = $1 AND (created_at, id) > ($2, $3)
ORDER BY created_at, id LIMIT $4;

-- name: set_sms_consent
UPDATE patients SET sms_consent = $3, sms_consent_at = now(), sms_consent_source = $4
WHERE id = $1 AND clinic_id = $2
RETURNING
-- include: patient_columns
;

-- name: restore_sms_consent
-- The patient's number texted START: consent comes back only if an opt-out by text ($4)
-- took it (a family phone's START never gives consent a sibling did not give).
UPDATE patients SET sms_consent = true, sms_consent_at = now(), sms_consent_source = $3
WHERE id = $1 AND clinic_id = $2 AND NOT sms_consent AND sms_consent_source = $4
RETURNING
-- include: patient_columns
;

-- name: set_ride_contact_consent
-- The ride contact's number ($3) texted STOP ($4 false) or START ($4 true): their consent
-- follows, if they are still this patient's ride contact and it changes. An opt-in gives
-- back only a consent an opt-out by text took ($6: that source).
UPDATE patients SET ride_contact_consent = $4, ride_contact_consent_at = now(),
                    ride_contact_consent_source = $5
WHERE id = $1 AND clinic_id = $2 AND ride_contact_phone = $3 AND ride_contact_consent <> $4
  AND ($4 = false OR ride_contact_consent_source = $6)
RETURNING
-- include: patient_columns
;

-- === Bookings ===========================================================================

-- fragment: booking_columns
-- Everything about a booking that its views and events need (model.Booking), from `b` (a
-- bookings row) and the joins of booking_joins.
b.id, b.clinic_id, b.site_id, b.room_id, b.provider_id, b.patient_id, b.series_id,
b.session_type, b.is_dosing, b.starts_at, b.ends_at, b.occupied_until, b.status, b.version,
b.confirmed_at, b.ride_status, b.ride_driver_name, b.reschedule_requested_at, b.cancel_reason,
b.cancelled_by, b.created_at, b.updated_at, b.mode, b.source, b.join_link, b.support_name,
b.support_phone, b.support_consent, b.support_confirmed_at,
c.name AS clinic_name, c.sms_name AS clinic_sms_name, c.phone AS clinic_phone,
s.name AS site_name, s.sms_name AS site_sms_name, s.address AS site_address,
s.phone AS site_phone, s.timezone AS site_timezone, s.region AS site_region,
p.language AS patient_language, p.ride_contact_name, p.ride_contact_phone,
p.ride_contact_consent, st.fasting_rule, p.timezone AS patient_timezone, c.call_in_phone,
c.video_link_template, st.prep_items ->> p.language AS prep_text

-- fragment: booking_joins
JOIN sites s ON s.id = b.site_id
JOIN clinics c ON c.id = b.clinic_id
JOIN patients p ON p.id = b.patient_id
JOIN clinic_session_types st ON st.clinic_id = b.clinic_id AND st.code = b.session_type

-- name: booking
SELECT
-- include: booking_columns
FROM bookings b
-- include: booking_joins
WHERE b.id = $1 AND b.clinic_id = $2;

-- name: list_bookings
-- A page of a network's bookings, full views, by start time.
SELECT
-- include: booking_columns
FROM bookings b
-- include: booking_joins
WHERE b.clinic_id = $1
  AND ($2::uuid IS NULL OR b.patient_id = $2)
  AND ($3::uuid IS NULL OR b.site_id = $3)
  AND ($4::timestamptz IS NULL OR b.starts_at >= $4)
  AND ($5::timestamptz IS NULL OR b.starts_at < $5)
  AND ($6::text IS NULL OR b.status = $6)
  AND (b.starts_at, b.id) > ($7, $8)
ORDER BY b.starts_at, b.id LIMIT $9;

-- name: bookings_needing_staff
-- Upcoming bookings staff should act on (full views): reschedule requested, or a dosing
-- session whose ride home is not confirmed.
SELECT
-- include: booking_columns
FROM bookings b
-- include: booking_joins
WHERE b.clinic_id = $1 AND b.status = 'booked' AND b.starts_at > now()
  AND (b.reschedule_requested_at IS NOT NULL
       OR (b.is_dosing AND b.mode <> 'home' AND b.ride_status <> 'confirmed')
       OR (b.mode = 'home' AND b.support_confirmed_at IS NULL
           AND b.starts_at < now() + interval '24 hours'))
ORDER BY b.starts_at, b.id LIMIT $2;

-- name: booking_status
-- Why a lifecycle step changed no row: the booking's status and start (no row: unknown).
SELECT status, starts_at FROM bookings WHERE id = $1 AND clinic_id = $2;

-- name: change_status
-- A lifecycle step (services/booking/rules.py, TRANSITIONS): from one of the statuses $3 to
-- $4, if the session started by $5 (NULL: whenever it starts), with a cancellation's reason
-- and who cancelled ($6, $7). Returns the booking as it is now; no row: unknown, or not in
-- one of those statuses (or not started).
WITH b AS (
    UPDATE bookings SET status = $4, version = version + 1, updated_at = now(),
                        cancel_reason = coalesce($6, cancel_reason),
                        cancelled_by = coalesce($7, cancelled_by)
    WHERE id = $1 AND clinic_id = $2 AND status = ANY($3::text[])
      AND ($5::timestamptz IS NULL OR starts_at <= $5)
    RETURNING *
)
SELECT
-- include: booking_columns
FROM b
-- include: booking_joins
;

-- name: set_ride
-- The ride home ($4 status, $5 driver) of a booking in one of the statuses $3; the booking
-- as it is now, no row as for change_status.
WITH b AS (
    UPDATE bookings SET ride_status = $4, ride_driver_name = $5, updated_at = now()
    WHERE id = $1 AND clinic_id = $2 AND status = ANY($3::text[])
    RETURNING *
)
SELECT
-- include: booking_columns
FROM b
-- include: booking_joins
;

-- name: booking_to_move
-- A booking to reschedule, locked, with its session type's length now.
SELECT
-- include: booking_columns
, st.code, st.duration_minutes, st.recovery_minutes, st.modes, st.route,
  st.prep_items::text AS prep_items
FROM bookings b
-- include: booking_joins
WHERE b.id = $1 AND b.clinic_id = $2
FOR UPDATE OF b;

-- name: move_booking
-- Move a booking in one of the statuses $3 (version + 1; the patient confirms again); the
-- booking as it is now, no row as for change_status.
WITH b AS (
    UPDATE bookings SET starts_at = $4, ends_at = $5, occupied_until = $6, room_id = $7,
                        provider_id = $8, version = version + 1, confirmed_at = NULL,
                        reschedule_requested_at = NULL, updated_at = now()
    WHERE id = $1 AND clinic_id = $2 AND status = ANY($3::text[])
    RETURNING *
)
SELECT
-- include: booking_columns
FROM b
-- include: booking_joins
;

-- name: set_confirmed
UPDATE bookings SET confirmed_at = now(), updated_at = now() WHERE id = $1 AND confirmed_at IS NULL;

-- name: set_support_confirmed
-- The support person of a home session confirmed they will be there: the booking as it is
-- now (no row: unknown, or not a booked home session).
WITH b AS (
    UPDATE bookings SET support_confirmed_at = coalesce(support_confirmed_at, now()),
                        updated_at = now()
    WHERE id = $1 AND clinic_id = $2 AND mode = 'home' AND status = 'booked'
    RETURNING *
)
SELECT
-- include: booking_columns
FROM b
-- include: booking_joins
;

-- name: set_reschedule_requested
UPDATE bookings SET reschedule_requested_at = now(), updated_at = now() WHERE id = $1;

-- fragment: booking_context_select
-- One round trip for what booking a session needs to know. NULL site/type columns: unknown.
SELECT p.id AS patient_id, p.clinic_id, p.language AS patient_language, p.sms_consent,
       p.ride_contact_name, p.ride_contact_phone, p.ride_contact_consent,
       s.id AS site_id, s.name AS site_name, s.sms_name AS site_sms_name,
       s.address AS site_address, s.phone AS site_phone, s.timezone AS site_timezone,
       s.region AS site_region, c.name AS clinic_name, c.sms_name AS clinic_sms_name,
       c.phone AS clinic_phone, st.code, st.is_dosing, st.duration_minutes, st.recovery_minutes, st.fasting_rule,
       st.modes, st.route, st.prep_items::text AS prep_items, p.timezone AS patient_timezone,
       c.call_in_phone, c.video_link_template, st.prep_items ->> p.language AS prep_text
FROM patients p
JOIN clinics c ON c.id = p.clinic_id
LEFT JOIN sites s ON s.id = $2 AND s.clinic_id = p.clinic_id
LEFT JOIN clinic_session_types st ON st.clinic_id = p.clinic_id AND st.code = $4
WHERE p.id = $3 AND p.clinic_id = $1


-- name: booking_context
-- booking_context_select in a transaction: the patient row is locked, so one patient's series
-- are decided one at a time.
-- include: booking_context_select
FOR UPDATE OF p;


-- name: booking_context_unlocked
-- booking_context_select outside a transaction (one session booked by one statement): a lock
-- would end with the statement, and would only cost a transaction id and a write of the row.
-- include: booking_context_select
;

-- fragment: placement_rules
-- How a time fits the site's rules, from the row `asked` of the statement that includes it:
-- site_id, clinic_id, day (local), weekday (ISO), starts and ends (local times, recovery
-- included), room_id and provider_id (NULL: not asked for).
    EXISTS (SELECT 1 FROM site_closures
            WHERE site_id = asked.site_id AND asked.day BETWEEN first_day AND last_day) AS closed,
    EXISTS (SELECT 1 FROM site_hours WHERE site_id = asked.site_id AND weekday = asked.weekday
            AND opens <= asked.starts AND asked.ends <= closes) AS open,
    (asked.room_id IS NULL OR EXISTS (SELECT 1 FROM rooms WHERE id = asked.room_id
                                      AND clinic_id = asked.clinic_id
                                      AND site_id = asked.site_id)) AS room_known,
    (asked.provider_id IS NULL OR EXISTS (SELECT 1 FROM providers WHERE id = asked.provider_id
                                          AND clinic_id = asked.clinic_id)) AS provider_known,
    (asked.provider_id IS NULL OR EXISTS (SELECT 1 FROM provider_hours
        WHERE provider_id = asked.provider_id AND site_id = asked.site_id
          AND weekday = asked.weekday AND starts <= asked.starts AND asked.ends <= ends))
        AS provider_works,


-- fragment: asked_by_parameters
-- placement_rules' row from parameters: $1 site, $2 clinic, $3 local day, $4 weekday, $5 local
-- start, $6 local end, $7 room or NULL, $8 provider or NULL.
(SELECT $1::uuid AS site_id, $2::uuid AS clinic_id, $3::date AS day, $4::smallint AS weekday,
        $5::time AS starts, $6::time AS ends, $7::uuid AS room_id, $8::uuid AS provider_id) asked


-- name: placement
-- Whether a time fits a site's rules, and (when not given) the free room and provider.
-- placement_rules' parameters ($1 to $8), $9/$10 UTC start/end, $11 booking being moved,
-- $12/$13 preferred room/provider.
SELECT
-- include: placement_rules
    CASE WHEN $7::uuid IS NULL THEN (
        SELECT r.id FROM rooms r
        WHERE r.site_id = $1 AND NOT EXISTS (
            SELECT 1 FROM bookings b WHERE b.room_id = r.id AND b.status IN ('booked', 'arrived')
              AND tstzrange(b.starts_at, b.occupied_until) && tstzrange($9, $10) AND b.id <> $11)
        ORDER BY r.id = $12 DESC, r.name, r.id LIMIT 1) END AS free_room,
    CASE WHEN $8::uuid IS NULL THEN (
        SELECT h.provider_id FROM provider_hours h JOIN providers p ON p.id = h.provider_id
        WHERE h.site_id = $1 AND h.weekday = $4 AND h.starts <= $5::time AND $6::time <= h.ends
          AND NOT EXISTS (
            SELECT 1 FROM bookings b WHERE b.provider_id = h.provider_id
              AND b.status IN ('booked', 'arrived')
              AND tstzrange(b.starts_at, b.occupied_until) && tstzrange($9, $10) AND b.id <> $11)
        ORDER BY h.provider_id = $13 DESC, p.name, p.id LIMIT 1) END AS free_provider
FROM
-- include: asked_by_parameters
;


-- name: placement_given
-- placement when the room and the provider are both given (placement_rules' parameters): no
-- search for free ones. A statement of its own so that PostgreSQL keeps its plan: placement's
-- best plan depends on which of $7 and $8 are NULL, so it is planned anew at every call.
SELECT
-- include: placement_rules
    NULL::uuid AS free_room, NULL::uuid AS free_provider
FROM
-- include: asked_by_parameters
;

-- name: insert_booking_with_event
-- The booking, its SessionBooked event (made in Python, $23 on: the outbox's row, which
-- shared/outbox.py gives) and the request's audit entry ($29 on) in one round trip, written
-- only if the time fits the site's rules: placement_rules' parameters ($1 to $8, the room and
-- provider it goes to), which placement then need not check first. Its row: how the time
-- fits (as placement_given answers), then the booking, whose columns are NULL when nothing
-- was written: the rules refused it, or an exclusion constraint (room, provider or patient
-- busy) stopped it; no event and no entry either then. A visit that is not in clinic ($17)
-- takes no room and is not held by the site's opening hours.
WITH fit AS (
    SELECT
-- include: placement_rules
        NULL::uuid AS free_room, NULL::uuid AS free_provider
    FROM
-- include: asked_by_parameters
), booked AS (
    INSERT INTO bookings (id, clinic_id, site_id, room_id, provider_id, patient_id, series_id,
                          session_type, is_dosing, starts_at, ends_at, occupied_until, mode,
                          join_link, support_name, support_phone, support_consent, source)
    SELECT $9::uuid, $2::uuid, $1::uuid, $7::uuid, $8::uuid, $10::uuid, $11::uuid, $12::text,
           $13::boolean, $14::timestamptz, $15::timestamptz, $16::timestamptz, $17::text,
           $18::text, $19::text, $20::text, coalesce($21::boolean, false), $22::text
    FROM fit
    WHERE NOT fit.closed AND (fit.open OR $17::text <> 'clinic') AND fit.room_known
      AND fit.provider_known AND fit.provider_works
    ON CONFLICT DO NOTHING
    RETURNING *
), announced AS (
-- include: session_booked_outbox_row
), audited AS (
    -- the request's audit entry ($29 on: shared.audit.Entry.inline; none when $29 is NULL)
    INSERT INTO audit_log (at, clinic_id, actor_clinic_id, actor_kind, staff_id, actor_label, role,
                           action, resource, patient_ids, outcome, status, client, correlation_id)
    SELECT $29, $30, $31, $32, $33, $34, $35, $36, $37, ARRAY[booked.patient_id], $38, $39, $40, $41
    FROM booked WHERE $29::timestamptz IS NOT NULL
)
SELECT fit.closed, fit.open, fit.room_known, fit.provider_known, fit.provider_works,
       fit.free_room, fit.free_provider,
       b.id, b.clinic_id, b.site_id, b.room_id, b.provider_id, b.patient_id, b.series_id,
       b.session_type, b.is_dosing, b.starts_at, b.ends_at, b.occupied_until, b.status, b.version,
       b.confirmed_at, b.ride_status, b.ride_driver_name, b.reschedule_requested_at,
       b.cancel_reason, b.cancelled_by, b.created_at, b.updated_at, b.mode, b.source, b.join_link,
       b.support_name, b.support_phone, b.support_consent, b.support_confirmed_at
FROM fit LEFT JOIN booked b ON true;

-- name: book_at_once
-- One session in clinic with its room and provider given, booked by ONE statement: no
-- context read first. It reads what booking_context reads and writes the booking, its
-- SessionBooked event (its JSON built here: session_booked_events, from the model) and the
-- request's audit entry ($21 on: as in insert_booking_with_event) only if every check
-- book_slots makes for such a visit passes: patient, site and session type known, the type
-- booked in clinic, a way to arrange a dosing session's ride home (rules.check_contact), the
-- site's rules (placement_rules), no exclusion constraint (room, provider, patient busy); and
-- if the session's times, worked out in Python (rules.span) from the site's time zone and the
-- type's durations as last seen, hold: that zone and those durations are still the ones
-- here. It answers the booking and its context, or no row when anything refused it: nothing
-- was written then, and the caller books the usual way (which says why).
-- $1 clinic, $2 site, $3 patient, $4 session type, $5 UTC start, $6 room, $7 provider,
-- $8 booking id, $9 event id, $10 correlation id, $11 trace context, $12 the site's time
-- zone, $13/$14 the type's duration and recovery (minutes), $15 UTC end, $16 UTC end of
-- recovery, $17 local day, $18 weekday, $19/$20 local start and end of recovery.
WITH t AS (
-- include: booking_context_select
), checked AS (
    SELECT t.* FROM t
    WHERE t.site_timezone = $12::text AND t.duration_minutes = $13::int
      AND t.recovery_minutes = $14::int AND 'clinic' = ANY(t.modes)
      AND (NOT t.is_dosing OR t.sms_consent OR coalesce(t.ride_contact_phone, '') <> '')
), asked AS (
    SELECT checked.site_id, checked.clinic_id, $17::date AS day, $18::smallint AS weekday,
           $19::time AS starts, $20::time AS ends, $6::uuid AS room_id, $7::uuid AS provider_id
    FROM checked
), fit AS (
    SELECT
-- include: placement_rules
        NULL::uuid AS free_room, NULL::uuid AS free_provider
    FROM asked
), booked AS (
    INSERT INTO bookings (id, clinic_id, site_id, room_id, provider_id, patient_id, series_id,
                          session_type, is_dosing, starts_at, ends_at, occupied_until, mode,
                          join_link, support_name, support_phone, support_consent, source)
    SELECT $8::uuid, t.clinic_id, t.site_id, $6::uuid, $7::uuid, t.patient_id, NULL, t.code,
           t.is_dosing, $5::timestamptz, $15::timestamptz, $16::timestamptz, 'clinic', NULL,
           NULL, NULL, false, 'staff'
    FROM t, fit
    WHERE NOT fit.closed AND fit.open AND fit.room_known AND fit.provider_known
      AND fit.provider_works
    ON CONFLICT DO NOTHING
    RETURNING *
), announced AS (
-- include: session_booked_events
), audited AS (
    INSERT INTO audit_log (at, clinic_id, actor_clinic_id, actor_kind, staff_id, actor_label, role,
                           action, resource, patient_ids, outcome, status, client, correlation_id)
    SELECT $21, $22, $23, $24, $25, $26, $27, $28, $29, ARRAY[booked.patient_id], $30, $31, $32, $33
    FROM booked WHERE $21::timestamptz IS NOT NULL
)
SELECT b.id, b.clinic_id, b.site_id, b.room_id, b.provider_id, b.patient_id, b.series_id,
       b.session_type, b.is_dosing, b.starts_at, b.ends_at, b.occupied_until, b.status, b.version,
       b.confirmed_at, b.ride_status, b.ride_driver_name, b.reschedule_requested_at,
       b.cancel_reason, b.cancelled_by, b.created_at, b.updated_at, b.mode, b.source, b.join_link,
       b.support_name, b.support_phone, b.support_consent, b.support_confirmed_at,
       t.clinic_name, t.clinic_sms_name, t.clinic_phone, t.site_name, t.site_sms_name,
       t.site_address, t.site_phone, t.site_timezone, t.site_region, t.patient_language,
       t.ride_contact_name, t.ride_contact_phone, t.ride_contact_consent, t.fasting_rule,
       t.patient_timezone, t.call_in_phone, t.video_link_template, t.prep_text
FROM booked b, t;

-- name: what_conflicts
-- Which of room, provider, patient is busy in a time range, and with which booking.
SELECT CASE WHEN room_id = $3 THEN 'room' WHEN provider_id = $4 THEN 'provider' ELSE 'patient' END
           AS resource, id
FROM bookings
WHERE status IN ('booked', 'arrived') AND tstzrange(starts_at, occupied_until) && tstzrange($1, $2)
  AND (room_id = $3 OR provider_id = $4 OR patient_id = $5)
ORDER BY (room_id = $3) DESC, (provider_id = $4) DESC
LIMIT 1;

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

-- === The waitlist =======================================================================

-- fragment: waitlist_entry_columns
id, clinic_id, patient_id, site_id, session_type, window_start, window_end, status, created_at

-- name: insert_waitlist_entry
INSERT INTO waitlist_entries (id, clinic_id, patient_id, site_id, session_type, window_start, window_end)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING
-- include: waitlist_entry_columns
;

-- name: list_waitlist
SELECT
-- include: waitlist_entry_columns
FROM waitlist_entries
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
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: lock_offer
SELECT id, site_id, room_id, provider_id, session_type, starts_at, candidates, status
FROM waitlist_offers WHERE id = $1 AND clinic_id = $2 FOR UPDATE;

-- name: take_offer
UPDATE waitlist_offers SET status = 'taken', taken_by = $2, booking_id = $3 WHERE id = $1;

-- name: waitlist_booked
UPDATE waitlist_entries SET status = 'booked'
WHERE patient_id = $1 AND site_id = $2 AND session_type = $3 AND status = 'waiting';

-- === Idempotency-Key ====================================================================

-- name: claim_idempotency_key
-- The first request with a key claims it (true); a later one finds it taken (no row).
INSERT INTO idempotency_keys (clinic_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING true;

-- name: idempotent_response
SELECT request_hash, status_code, response FROM idempotency_keys
WHERE clinic_id = $1 AND key = $2;

-- name: keep_idempotent_response
UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE clinic_id = $1 AND key = $2;

-- === Staff: accounts, sign-in and sessions (services/booking/staff.py) ===================

-- fragment: staff_member_columns
id, clinic_id, email, name, role, language, disabled_at, created_at, created_by,
password_hash IS NOT NULL AS enrolled, totp_secret IS NOT NULL AS has_totp

-- fragment: staff_credentials_columns
id, clinic_id, email, name, role, language, password_hash, totp_secret, pending_totp_secret,
disabled_at

-- name: insert_staff
INSERT INTO staff (id, clinic_id, email, name, role, language, enrolment_hash,
                   enrolment_expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
RETURNING id, clinic_id, email, name, role, language, created_at;

-- name: list_staff
SELECT
-- include: staff_member_columns
FROM staff WHERE clinic_id = $1 ORDER BY lower(name), id;

-- name: get_staff
SELECT
-- include: staff_member_columns
FROM staff WHERE id = $1 AND clinic_id = $2;

-- name: staff_for_sign_in
SELECT
-- include: staff_credentials_columns
FROM staff WHERE lower(email) = lower($1);

-- name: staff_by_enrolment
SELECT
-- include: staff_credentials_columns
FROM staff
WHERE enrolment_hash = $1 AND enrolment_expires_at > now() AND disabled_at IS NULL
FOR UPDATE;

-- name: offer_totp
UPDATE staff SET pending_totp_secret = coalesce(pending_totp_secret, $2), updated_at = now()
WHERE id = $1
RETURNING pending_totp_secret;

-- name: complete_enrolment
UPDATE staff SET password_hash = $2, totp_secret = $3, totp_last_step = $4,
                 pending_totp_secret = NULL, enrolment_hash = NULL, enrolment_expires_at = NULL,
                 updated_at = now()
WHERE id = $1;

-- name: reset_enrolment
UPDATE staff SET password_hash = NULL, totp_secret = NULL, totp_last_step = NULL,
                 pending_totp_secret = NULL, enrolment_hash = $3, enrolment_expires_at = $4,
                 updated_at = now()
WHERE id = $1 AND clinic_id = $2
RETURNING id;

-- name: set_role
UPDATE staff SET role = $3, updated_at = now() WHERE id = $1 AND clinic_id = $2 RETURNING id;

-- name: set_language
UPDATE staff SET language = $2, updated_at = now() WHERE id = $1;

-- name: disable_staff
UPDATE staff SET disabled_at = coalesce(disabled_at, now()), updated_at = now()
WHERE id = $1 AND clinic_id = $2 RETURNING id;

-- name: use_totp_step
-- A TOTP code works once: its step must be later than the last one used.
UPDATE staff SET totp_last_step = $2
WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)
RETURNING id;

-- name: signing_key
SELECT kid, private_key FROM signing_keys WHERE clinic_id = $1;

-- name: insert_signing_key
WITH k AS (
    INSERT INTO signing_keys (kid, clinic_id, private_key) VALUES ($1, $2, $3)
    ON CONFLICT (clinic_id) DO NOTHING
    RETURNING kid, clinic_id
)
INSERT INTO token_keys (kid, clinic_id, public_key) SELECT kid, clinic_id, $4 FROM k
RETURNING kid;

-- name: failures
-- Failed sign-ins in the window, for the account ($1) and for the address ($2).
SELECT count(*) FILTER (WHERE subject = $1) AS account,
       count(*) FILTER (WHERE subject = $2) AS address
FROM sign_in_failures WHERE subject IN ($1, $2) AND failed_at > now() - make_interval(secs => $3);

-- name: record_failure
INSERT INTO sign_in_failures (subject) SELECT unnest($1::text[]);

-- name: forget_failures
DELETE FROM sign_in_failures WHERE subject = $1 OR failed_at < now() - interval '1 day';

-- name: insert_session
INSERT INTO staff_sessions (id, staff_id, clinic_id, expires_at) VALUES ($1, $2, $3, $4);

-- name: open_session
SELECT s.id, s.expires_at, st.id AS staff_id, st.clinic_id, st.name, st.role, st.language
FROM staff_sessions s JOIN staff st ON st.id = s.staff_id
WHERE s.id = $1 AND s.ended_at IS NULL AND s.expires_at > now() AND st.disabled_at IS NULL;

-- name: end_sessions
-- End a person's open sessions (or one of them, $2): returns them, for StaffSessionEnded.
UPDATE staff_sessions SET ended_at = now()
WHERE staff_id = $1 AND ended_at IS NULL AND ($2::uuid IS NULL OR id = $2)
RETURNING id, staff_id, clinic_id, expires_at;

-- === Staff screens (services/booking/views.py): each screen's data in one statement, as ===
-- === JSON built by PostgreSQL, so that a page never asks once per row ====================

-- name: sheet
-- A site's bookings between two local dates ($3, $4 inclusive; local midnights in the site's
-- time zone, so DST days have 23 or 25 hours), with patient, room and provider names; the
-- site, its rooms, the providers working there and the network's sites (for the picker). NULL: unknown site.
SELECT json_build_object(
    'site', json_build_object('id', s.id, 'name', s.name, 'timezone', s.timezone,
                              'address', s.address, 'phone', s.phone),
    'from', $3::date, 'to', $4::date,
    'sites', (SELECT json_agg(json_build_object('id', o.id, 'name', o.name) ORDER BY o.name, o.id)
              FROM sites o WHERE o.clinic_id = $2),
    'rooms', (SELECT coalesce(json_agg(json_build_object('id', r.id, 'name', r.name)
                                       ORDER BY r.name, r.id), '[]')
              FROM rooms r WHERE r.site_id = s.id),
    'providers', (SELECT coalesce(json_agg(json_build_object('id', p.id, 'name', p.name)
                                           ORDER BY p.name, p.id), '[]')
                  FROM providers p WHERE p.clinic_id = $2 AND p.id IN (
                      SELECT provider_id FROM provider_hours WHERE site_id = s.id)),
    'bookings', (SELECT coalesce(json_agg(json_build_object(
                     'id', b.id, 'starts_at', b.starts_at, 'ends_at', b.ends_at,
                     'occupied_until', b.occupied_until, 'status', b.status, 'version', b.version,
                     'session_type', b.session_type, 'is_dosing', b.is_dosing,
                     'series_id', b.series_id, 'confirmed', b.confirmed_at IS NOT NULL,
                     'ride_status', b.ride_status, 'ride_driver_name', b.ride_driver_name,
                     'reschedule_requested', b.reschedule_requested_at IS NOT NULL,
                     'cancel_reason', b.cancel_reason, 'room_id', b.room_id, 'room_name', r.name,
                     'mode', b.mode, 'source', b.source, 'support_confirmed', b.support_confirmed_at IS NOT NULL,
                     'provider_id', b.provider_id, 'provider_name', p.name,
                     'patient_id', b.patient_id, 'patient_name',
                     pt.given_name || ' ' || pt.family_name)
                     ORDER BY r.name, b.starts_at, b.id), '[]')
                 FROM bookings b
                 LEFT JOIN rooms r ON r.id = b.room_id  -- none for a phone or video session
                 JOIN providers p ON p.id = b.provider_id
                 JOIN patients pt ON pt.id = b.patient_id
                 WHERE b.site_id = s.id AND b.clinic_id = $2
                   AND b.starts_at >= ($3::date::timestamp AT TIME ZONE s.timezone)
                   AND b.starts_at < (($4::date + 1)::timestamp AT TIME ZONE s.timezone))
)::text
FROM sites s WHERE s.id = $1 AND s.clinic_id = $2;

-- name: search_patients
-- Patients of a network whose name has every word of $2, or whose number ends with the
-- digits $3 (at least 4), best first.
SELECT id, given_name, family_name, phone_e164, language, sms_consent, ride_contact_name,
       created_at
FROM patients
WHERE clinic_id = $1
  AND ((cardinality($2::text[]) > 0 AND (
          SELECT bool_and(given_name || ' ' || family_name ILIKE '%' || w || '%')
          FROM unnest($2::text[]) w))
       OR ($3::text <> '' AND regexp_replace(phone_e164, '\D', '', 'g') LIKE '%' || $3))
ORDER BY family_name, given_name, id
LIMIT $4;

-- name: patient_overview
-- A patient with every booking (site and room names, local times by the site's zone).
SELECT json_build_object(
    'patient', to_jsonb(pt) - 'clinic_id',
    'bookings', (SELECT coalesce(json_agg(json_build_object(
                     'id', b.id, 'starts_at', b.starts_at, 'status', b.status,
                     'session_type', b.session_type, 'is_dosing', b.is_dosing,
                     'series_id', b.series_id, 'confirmed', b.confirmed_at IS NOT NULL,
                     'ride_status', b.ride_status, 'ride_driver_name', b.ride_driver_name,
                     'reschedule_requested', b.reschedule_requested_at IS NOT NULL,
                     'cancel_reason', b.cancel_reason, 'cancelled_by', b.cancelled_by,
                     'site_id', b.site_id, 'site_name', s.name, 'timezone', s.timezone,
                     'room_name', r.name, 'mode', b.mode) ORDER BY b.starts_at DESC, b.id), '[]')
                 FROM bookings b JOIN sites s ON s.id = b.site_id LEFT JOIN rooms r ON r.id = b.room_id
                 WHERE b.patient_id = pt.id AND b.clinic_id = $2)
)::text
FROM patients pt WHERE pt.id = $1 AND pt.clinic_id = $2;

-- name: set_patient_timezone
UPDATE patients SET timezone = $3 WHERE id = $1 AND clinic_id = $2
RETURNING
-- include: patient_columns
;

-- name: patient_names
SELECT id, given_name || ' ' || family_name AS name FROM patients
WHERE clinic_id = $1 AND id = ANY($2::uuid[]);

-- name: attention
-- What staff must act on, with patient names: reschedule requests; dosing sessions within
-- $2 hours whose ride is not arranged; new leads (booked online, not yet seen by staff);
-- open waitlist offers; the time zone of the network's
-- first site (for times not tied to a site).
SELECT json_build_object(
    'bookings', (SELECT coalesce(json_agg(json_build_object(
                     'id', b.id, 'starts_at', b.starts_at, 'site_id', b.site_id,
                     'site_name', s.name, 'timezone', s.timezone, 'session_type', b.session_type,
                     'patient_id', b.patient_id, 'patient_name', pt.given_name || ' ' || pt.family_name,
                     'reschedule_requested', b.reschedule_requested_at IS NOT NULL,
                     'ride_status', b.ride_status, 'is_dosing', b.is_dosing, 'mode', b.mode,
                     'support_unconfirmed', b.mode = 'home' AND b.support_confirmed_at IS NULL)
                     ORDER BY b.starts_at, b.id), '[]')
                 FROM bookings b JOIN sites s ON s.id = b.site_id JOIN patients pt ON pt.id = b.patient_id
                 WHERE b.clinic_id = $1 AND b.status = 'booked' AND b.starts_at > now()
                   AND (b.reschedule_requested_at IS NOT NULL
                        OR (b.is_dosing AND b.mode <> 'home' AND b.ride_status <> 'confirmed'
                            AND b.starts_at < now() + make_interval(hours => $2))
                        OR (b.mode = 'home' AND b.support_confirmed_at IS NULL
                            AND b.starts_at < now() + interval '24 hours'))),
    'leads', (SELECT coalesce(json_agg(json_build_object(
                  'id', b.id, 'starts_at', b.starts_at, 'site_name', s.name, 'timezone', s.timezone,
                  'mode', b.mode, 'patient_id', b.patient_id,
                  'patient_name', pt.given_name || ' ' || pt.family_name, 'language', pt.language)
                  ORDER BY b.starts_at, b.id), '[]')
              FROM bookings b JOIN sites s ON s.id = b.site_id JOIN patients pt ON pt.id = b.patient_id
              WHERE b.clinic_id = $1 AND b.source = 'online' AND b.lead_seen_at IS NULL
                AND b.status = 'booked'),
    'offers', (SELECT coalesce(json_agg(json_build_object(
                   'id', o.id, 'starts_at', o.starts_at, 'site_name', s.name, 'timezone', s.timezone,
                   'session_type', o.session_type, 'candidates', cardinality(o.candidates))
                   ORDER BY o.starts_at), '[]')
               FROM waitlist_offers o JOIN sites s ON s.id = o.site_id
               WHERE o.clinic_id = $1 AND o.status = 'open' AND o.starts_at > now()),
    'timezone', (SELECT timezone FROM sites WHERE clinic_id = $1 ORDER BY created_at, id LIMIT 1)
)::text;

-- name: network
-- A network's set-up for its admins: sites (hours, closures, rooms), providers (hours).
SELECT json_build_object(
    'clinic', (SELECT json_build_object('id', id, 'name', name, 'phone', phone) FROM clinics WHERE id = $1),
    'sites', (SELECT coalesce(json_agg(json_build_object(
                  'id', s.id, 'name', s.name, 'address', s.address, 'phone', s.phone,
                  'timezone', s.timezone, 'region', s.region, 'default_language', s.default_language,
                  'hours', (SELECT coalesce(json_agg(json_build_object('weekday', h.weekday,
                                'opens', h.opens, 'closes', h.closes) ORDER BY h.weekday, h.opens), '[]')
                            FROM site_hours h WHERE h.site_id = s.id),
                  'closures', (SELECT coalesce(json_agg(json_build_object('first_day', c.first_day,
                                   'last_day', c.last_day, 'reason', c.reason) ORDER BY c.first_day), '[]')
                               FROM site_closures c WHERE c.site_id = s.id AND c.last_day >= current_date - 30),
                  'rooms', (SELECT coalesce(json_agg(json_build_object('id', r.id, 'name', r.name)
                                ORDER BY r.name), '[]') FROM rooms r WHERE r.site_id = s.id))
                  ORDER BY s.name, s.id), '[]')
              FROM sites s WHERE s.clinic_id = $1),
    'providers', (SELECT coalesce(json_agg(json_build_object(
                      'id', p.id, 'name', p.name,
                      'hours', (SELECT coalesce(json_agg(json_build_object('site_id', h.site_id,
                                    'weekday', h.weekday, 'starts', h.starts, 'ends', h.ends)
                                    ORDER BY h.site_id, h.weekday, h.starts), '[]')
                                FROM provider_hours h WHERE h.provider_id = p.id))
                      ORDER BY p.name, p.id), '[]')
                  FROM providers p WHERE p.clinic_id = $1),
    'staff', (SELECT coalesce(json_agg(json_build_object(
                  'id', st.id, 'name', st.name, 'email', st.email, 'role', st.role,
                  'language', st.language, 'disabled', st.disabled_at IS NOT NULL,
                  'enrolled', st.password_hash IS NOT NULL, 'has_totp', st.totp_secret IS NOT NULL)
                  ORDER BY lower(st.name), st.id), '[]')
              FROM staff st WHERE st.clinic_id = $1)
)::text;

-- === Online consultation booking (services/booking/online.py) ==========================

-- name: clinic_by_slug
SELECT id, name, sms_name, phone, created_at, slug FROM clinics WHERE slug = $1;

-- name: consultation_sites
-- The network's sites where a provider who takes consultations works.
SELECT id, clinic_id, name, sms_name, address, phone, timezone, default_language, region,
       created_at
FROM sites s
WHERE clinic_id = $1 AND EXISTS (
    SELECT 1 FROM provider_hours h JOIN providers p ON p.id = h.provider_id
    WHERE h.site_id = s.id AND p.consultations)
ORDER BY created_at, id;

-- name: consultation_hours_at_site
SELECT h.provider_id, h.weekday, h.starts, h.ends
FROM provider_hours h JOIN providers p ON p.id = h.provider_id
WHERE h.site_id = $1 AND p.consultations;

-- name: lock_code_limits
-- Until the transaction ends, one code request at a time for each key $1 (its number, address
-- and network): the counts of recent_code_requests and the new row go together. Locked in
-- the order of the keys' hashes (volatile: evaluated after the sort), so two requests never
-- wait for each other crosswise.
SELECT pg_advisory_xact_lock(130, h)
FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS k) AS keys
ORDER BY h;

-- name: recent_code_requests
-- Codes asked for since $4: for the number $1, from the address $2, for the network $3.
SELECT (SELECT count(*) FROM online_requests WHERE phone_e164 = $1 AND created_at > $4) AS number,
       (SELECT count(*) FROM online_requests WHERE consent_address = $2 AND created_at > $4) AS address,
       (SELECT count(*) FROM online_requests WHERE clinic_id = $3 AND created_at > $4) AS network;

-- name: insert_online_request
INSERT INTO online_requests (id, clinic_id, site_id, provider_id, starts_at, mode, given_name,
                             family_name, phone_e164, language, timezone, consent_version,
                             consent_at, consent_address, consent_user_agent, code_hash,
                             expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17);

-- name: online_request
-- A network's request, locked while its code is checked.
SELECT id, clinic_id, site_id, provider_id, starts_at, mode, given_name, family_name,
       phone_e164, language, timezone, consent_version, consent_at, code_hash, tries,
       expires_at, booking_id IS NOT NULL AS booked
FROM online_requests WHERE id = $1 AND clinic_id = $2
FOR UPDATE;

-- name: count_wrong_code
UPDATE online_requests SET tries = tries + 1 WHERE id = $1;

-- name: online_request_booked
UPDATE online_requests SET verified_at = now(), booking_id = $2, patient_id = $3 WHERE id = $1;

-- name: patients_with_phone
-- The network's patients with a number (to match a verified visitor by name), locked.
SELECT
-- include: patient_columns
FROM patients WHERE clinic_id = $1 AND phone_e164 = $2
ORDER BY created_at, id
FOR UPDATE;

-- name: lead_seen
UPDATE bookings SET lead_seen_at = now(), updated_at = now()
WHERE id = $1 AND clinic_id = $2 AND source = 'online'
RETURNING id;

-- name: patient_owners
-- Which network each of these patients belongs to (the audit trail: a refused cross-network read).
SELECT id, clinic_id FROM patients WHERE id = ANY($1::uuid[]);
