-- Rows shaped like real ones for the tables that grow (bench/table_sizes.py): $1 how many.
-- Each query is one statement, run in its service's schema with its migrations applied.

-- name: booking_1_clinics
INSERT INTO clinics (id, name, phone)
VALUES ('00000000-0000-0000-0000-000000000001', 'Bayside Wellness Network', '+16045550101');

-- name: booking_2_sites
INSERT INTO sites (id, clinic_id, name, address, phone, timezone, region)
SELECT ('00000000-0000-0000-0001-' || lpad(i::text, 12, '0'))::uuid, '00000000-0000-0000-0000-000000000001',
       'Bayside Downtown ' || i, '1200 Main Street, Suite 300, Vancouver BC V6B 2T4', '+16045550102',
       'America/Vancouver', 'CA-BC'
FROM generate_series(0, 99) i;

-- name: booking_3_rooms
INSERT INTO rooms (id, clinic_id, site_id, name)
SELECT ('00000000-0000-0000-0002-' || lpad(i::text, 12, '0'))::uuid, '00000000-0000-0000-0000-000000000001',
       ('00000000-0000-0000-0001-' || lpad((i % 100)::text, 12, '0'))::uuid, 'Chair ' || i
FROM generate_series(0, 499) i;

-- name: booking_4_providers
INSERT INTO providers (id, clinic_id, name)
SELECT ('00000000-0000-0000-0003-' || lpad(i::text, 12, '0'))::uuid, '00000000-0000-0000-0000-000000000001',
       'Dr Provider ' || i
FROM generate_series(0, 499) i;

-- name: booking_5_patients
INSERT INTO patients (id, clinic_id, given_name, family_name, phone_e164, sms_consent, sms_consent_at,
                      sms_consent_source, ride_contact_name, ride_contact_phone, ride_contact_consent)
SELECT ('00000000-0000-0000-0004-' || lpad(i::text, 12, '0'))::uuid, '00000000-0000-0000-0000-000000000001',
       'Alexandra', 'Thompson-Nguyen', '+1604555' || lpad((i % 10000)::text, 4, '0'), true, now(),
       'intake form', 'Sam Thompson', '+17785550199', true
FROM generate_series(0, $1 / 2) i;

-- name: booking_6_bookings
-- past sessions, done: the exclusion constraints' indexes hold only booked and arrived ones
INSERT INTO bookings (id, clinic_id, site_id, room_id, provider_id, patient_id, session_type, is_dosing,
                      starts_at, ends_at, occupied_until, status, version, confirmed_at, ride_status,
                      created_at, updated_at)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001',
       ('00000000-0000-0000-0001-' || lpad((i % 100)::text, 12, '0'))::uuid,
       ('00000000-0000-0000-0002-' || lpad((i % 500)::text, 12, '0'))::uuid,
       ('00000000-0000-0000-0003-' || lpad((i % 500)::text, 12, '0'))::uuid,
       ('00000000-0000-0000-0004-' || lpad((i % ($1 / 2))::text, 12, '0'))::uuid,
       'iv_infusion', true, t, t + interval '45 min', t + interval '90 min', 'fulfilled', 3,
       t - interval '1 day', 'confirmed', t - interval '5 days', t
FROM generate_series(0, $1 - 1) i, LATERAL (SELECT timestamptz '2026-01-01' + (i / 500) * interval '2 hours' AS t) x;

-- name: plans_1_plans
INSERT INTO plans (id, clinic_id, patient_id, template, template_version, definition, modality, phase,
                   sessions_target, sessions_booked, sessions_completed)
SELECT ('00000000-0000-0000-0005-' || lpad(i::text, 12, '0'))::uuid, gen_random_uuid(), gen_random_uuid(),
       'iv_induction', 1, (SELECT definition FROM plan_templates WHERE code = 'iv_induction' LIMIT 1),
       'iv', 'induction', 6, 3, 2
FROM generate_series(0, $1 / 6) i;

-- name: plans_2_plan_sessions
INSERT INTO plan_sessions (booking_id, plan_id, clinic_id, patient_id, session_type, is_dosing, starts_at,
                           status, version)
SELECT gen_random_uuid(), ('00000000-0000-0000-0005-' || lpad((i / 6)::text, 12, '0'))::uuid,
       gen_random_uuid(), gen_random_uuid(), 'iv_infusion', true, now(), 'completed', 3
FROM generate_series(0, $1 - 1) i;

-- name: notifier_1_texts
-- sent and delivered: the state nearly all texts end in (a two-segment day-of reminder)
INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at, valid_until, status,
                   attempts, claimed_at, sent_at, provider_sid, body, segments, created_at, delivery_status,
                   delivery_updated_at, claimed_by, handed_at)
SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 2, 'day_of', t, t + interval '2 hours',
       'sent', 1, t, t, 'SM' || md5(i::text),
       'Bayside: see you today at 10:30 AM at 1200 Main Street, Suite 300, Vancouver. Reply 1 to '
       'confirm, 2 to reschedule. Questions? (604) 555-0102. Reply STOP to opt out.',
       2, t - interval '3 days', 'delivered', t + interval '5 s', 12345, t
FROM generate_series(0, $1 - 1) i, LATERAL (SELECT timestamptz '2026-01-01' + i * interval '10 s' AS t) x;

-- name: notifier_2_appointments
INSERT INTO appointments (booking_id, clinic_id, patient_id, version, status, clinic_name, clinic_phone,
                          site_name, site_address, site_phone, site_timezone, session_type, is_dosing,
                          fasting_rule, language, starts_at, ends_at, ride_status, schedule_version,
                          site_id, site_region)
SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 3, 'fulfilled', 'Bayside Wellness Network',
       '+16045550101', 'Bayside Downtown', '1200 Main Street, Suite 300, Vancouver BC V6B 2T4',
       '+16045550102', 'America/Vancouver', 'iv_infusion', true, 'solids_6h_clear_liquids_2h', 'en', t,
       t + interval '45 min', 'confirmed', 3, gen_random_uuid(), 'CA-BC'
FROM generate_series(0, $1 - 1) i, LATERAL (SELECT timestamptz '2026-01-01' + i * interval '10 s' AS t) x;

-- name: notifier_3_contacts
INSERT INTO contacts (patient_id, clinic_id, phone_e164, sms_consent)
SELECT gen_random_uuid(), gen_random_uuid(), '+1604555' || lpad((i % 10000)::text, 4, '0'), true
FROM generate_series(0, $1 - 1) i;

-- name: notifier_4_inbound_messages
INSERT INTO inbound_messages (message_sid, from_e164, body, patient_id, clinic_id, booking_id, interpretation)
SELECT 'SM' || md5(i::text), '+16045550123', '1 thanks', gen_random_uuid(), gen_random_uuid(),
       gen_random_uuid(), 'confirm'
FROM generate_series(0, $1 - 1) i;

-- name: shared_1_outbox
-- every service's outbox (sent rows, an event of $2 bytes) and processed events
INSERT INTO outbox (topic, key, value, headers, event_id, event_type, sent_at)
SELECT 'booking.events', convert_to(gen_random_uuid()::text, 'UTF8'), convert_to(repeat('x', $2), 'UTF8'),
       '{"correlation_id": "6f1c2d4e-3b5a-4c7d-9e8f-0a1b2c3d4e5f"}'::jsonb, gen_random_uuid(),
       'SessionBooked', now()
FROM generate_series(0, $1 - 1) i;

-- name: shared_2_processed_events
INSERT INTO processed_events (consumer, event_id, processed_at)
SELECT 'notifier', gen_random_uuid(), now() FROM generate_series(0, $1 - 1) i;

-- name: vacuum
VACUUM ANALYZE;

-- name: total_bytes
-- a table's heap, indexes and TOAST
SELECT pg_total_relation_size($1::regclass);
