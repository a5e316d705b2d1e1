-- Aggregate reads for staff screens (services/booking/views.py): each screen's data in one
-- statement, as JSON built by PostgreSQL, so that a page never asks once per row.

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
                     'provider_id', b.provider_id, 'provider_name', p.name,
                     'patient_id', b.patient_id, 'patient_name',
                     pt.given_name || ' ' || pt.family_name)
                     ORDER BY r.name, b.starts_at, b.id), '[]')
                 FROM bookings b
                 JOIN rooms r ON r.id = b.room_id
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
                     'room_name', r.name) ORDER BY b.starts_at DESC, b.id), '[]')
                 FROM bookings b JOIN sites s ON s.id = b.site_id JOIN rooms r ON r.id = b.room_id
                 WHERE b.patient_id = pt.id AND b.clinic_id = $2)
)::text
FROM patients pt WHERE pt.id = $1 AND pt.clinic_id = $2;

-- name: patient_names
SELECT id, given_name || ' ' || family_name AS name FROM patients
WHERE clinic_id = $1 AND id = ANY($2::uuid[]);

-- name: attention
-- What staff must act on, with patient names: reschedule requests; dosing sessions within
-- $2 hours whose ride is not arranged; open waitlist offers; the time zone of the network's
-- first site (for times not tied to a site).
SELECT json_build_object(
    'bookings', (SELECT coalesce(json_agg(json_build_object(
                     'id', b.id, 'starts_at', b.starts_at, 'site_id', b.site_id,
                     'site_name', s.name, 'timezone', s.timezone, 'session_type', b.session_type,
                     'patient_id', b.patient_id, 'patient_name', pt.given_name || ' ' || pt.family_name,
                     'reschedule_requested', b.reschedule_requested_at IS NOT NULL,
                     'ride_status', b.ride_status, 'is_dosing', b.is_dosing)
                     ORDER BY b.starts_at, b.id), '[]')
                 FROM bookings b JOIN sites s ON s.id = b.site_id JOIN patients pt ON pt.id = b.patient_id
                 WHERE b.clinic_id = $1 AND b.status = 'booked' AND b.starts_at > now()
                   AND (b.reschedule_requested_at IS NOT NULL
                        OR (b.is_dosing AND b.ride_status <> 'confirmed'
                            AND b.starts_at < now() + make_interval(hours => $2)))),
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
