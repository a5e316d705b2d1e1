-- name: upsert_contact
INSERT INTO contacts (patient_id, clinic_id, phone_e164, language, sms_consent)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (patient_id) DO UPDATE
    SET phone_e164 = EXCLUDED.phone_e164, language = EXCLUDED.language,
        sms_consent = EXCLUDED.sms_consent, updated_at = now();

-- name: upsert_appointment
INSERT INTO appointments (booking_id, clinic_id, patient_id, version, clinic_name, clinic_phone,
                          site_name, site_address, site_phone, site_timezone, session_type,
                          is_dosing, fasting_rule, language, starts_at, ends_at, ride_contact_name,
                          ride_contact_phone, schedule_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $4)
ON CONFLICT (booking_id) DO UPDATE
    SET version = EXCLUDED.version, schedule_version = EXCLUDED.version,
        starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
        ride_contact_name = EXCLUDED.ride_contact_name,
        ride_contact_phone = EXCLUDED.ride_contact_phone, updated_at = now()
    WHERE appointments.version < EXCLUDED.version
RETURNING booking_id;

-- name: insert_texts
INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at, valid_until,
                   status, status_reason)
SELECT $1, $2, $3, $4, k, d, v, s, r
FROM unnest($5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[]) AS t(k, d, v, s, r);

-- name: claim_due
UPDATE texts SET status = 'sending', claimed_at = now(), attempts = attempts + 1
WHERE id IN (
    SELECT id FROM texts WHERE status = 'pending' AND due_at <= now()
    ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: text_context
SELECT t.id, t.kind, t.clinic_id, t.patient_id, t.booking_id, t.booking_version, t.valid_until,
       t.attempts, t.offer_id, o.status AS offer_status,
       c.phone_e164, c.language, c.sms_consent, c.opted_out, c.stop_notice_sent, c.number_problem,
       a.status AS appointment_status, a.schedule_version AS appointment_version,
       coalesce(a.clinic_name, o.clinic_name, la.clinic_name) AS clinic_name,
       coalesce(a.clinic_phone, o.clinic_phone, la.clinic_phone) AS clinic_phone,
       coalesce(a.site_name, o.site_name, la.site_name) AS site_name, a.site_address,
       coalesce(a.site_timezone, o.site_timezone, la.site_timezone) AS site_timezone,
       coalesce(a.starts_at, o.starts_at) AS starts_at, a.ends_at, a.fasting_rule, a.ride_status,
       a.ride_contact_phone
FROM texts t
LEFT JOIN contacts c ON c.patient_id = t.patient_id
LEFT JOIN appointments a ON a.booking_id = t.booking_id
LEFT JOIN waitlist_offers o ON o.offer_id = t.offer_id AND o.patient_id = t.patient_id
LEFT JOIN LATERAL (  -- texts about no booking (plan follow-ups) name the patient's clinic
    SELECT clinic_name, clinic_phone, site_name, site_timezone FROM appointments
    WHERE patient_id = t.patient_id ORDER BY starts_at DESC LIMIT 1) la ON true
WHERE t.id = ANY($1::bigint[])
ORDER BY t.due_at, t.id;

-- name: mark_sent
UPDATE texts SET status = 'sent', sent_at = now(), provider_sid = $2, body = $3, segments = $4
WHERE id = $1 AND status = 'sending';

-- name: claim_stop_notice
-- True for exactly one text: the first one to this patient carries "reply STOP to opt out".
UPDATE contacts SET stop_notice_sent = true WHERE patient_id = $1 AND NOT stop_notice_sent
RETURNING true;

-- name: release_stop_notice
UPDATE contacts SET stop_notice_sent = false WHERE patient_id = $1;

-- name: mark_not_sent
UPDATE texts SET status = $2, status_reason = $3 WHERE id = $1 AND status = 'sending';

-- name: release_stale_claims
-- Texts claimed by a dispatcher that died before it called the provider go back to pending.
UPDATE texts SET status = 'pending'
WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => $1)
  AND provider_sid IS NULL
RETURNING id;

-- name: upsert_plan_progress
INSERT INTO plan_progress (plan_id, patient_id, template, sessions_target, sessions_booked,
                           sessions_completed)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (plan_id) DO UPDATE
    SET sessions_target = EXCLUDED.sessions_target, sessions_booked = EXCLUDED.sessions_booked,
        sessions_completed = EXCLUDED.sessions_completed, updated_at = now();

-- name: texts_of_patient
SELECT id, booking_id, kind, status, status_reason, due_at, valid_until, sent_at, body,
       segments, provider_sid
FROM texts WHERE patient_id = $1 AND clinic_id = $2 ORDER BY due_at, id;

-- name: set_appointment_status
UPDATE appointments SET status = $2, version = $3, updated_at = now()
WHERE booking_id = $1 AND version < $3
RETURNING booking_id;

-- name: cancel_pending_texts
-- Texts of a booking that must not go out any more (cancelled, moved, over), but for the
-- kinds in $4 (e.g. the driver's pickup text once the patient checked in).
UPDATE texts SET status = 'cancelled', status_reason = $3
WHERE booking_id = $1 AND status = 'pending' AND booking_version < $2
  AND NOT (kind = ANY($4::text[]));

-- name: update_contact
UPDATE contacts SET phone_e164 = $2, language = $3, sms_consent = $4, updated_at = now()
WHERE patient_id = $1;

-- name: text_by_sid
SELECT id, clinic_id, patient_id, booking_id, delivery_status FROM texts WHERE provider_sid = $1
FOR UPDATE;

-- name: update_delivery
UPDATE texts SET delivery_status = $2, delivery_error_code = $3, delivery_updated_at = now()
WHERE id = $1;

-- name: mark_number_problem
UPDATE contacts SET number_problem = $2, updated_at = now() WHERE patient_id = $1;

-- name: contacts_by_phone
SELECT patient_id, clinic_id, language FROM contacts WHERE phone_e164 = $1;

-- name: next_appointment
SELECT * FROM appointments
WHERE patient_id = $1 AND status = 'booked' AND starts_at > now()
ORDER BY starts_at LIMIT 1;

-- name: last_sent_kind
SELECT kind FROM texts WHERE patient_id = $1 AND status = 'sent' ORDER BY sent_at DESC LIMIT 1;

-- name: insert_inbound
INSERT INTO inbound_messages (message_sid, from_e164, body, patient_id, clinic_id, booking_id,
                              interpretation)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (message_sid) DO NOTHING
RETURNING id;

-- name: set_opted_out
UPDATE contacts SET opted_out = $2, updated_at = now() WHERE patient_id = $1;

-- name: retry_later
UPDATE texts SET status = 'pending', status_reason = $2,
                 due_at = now() + make_interval(secs => $3)
WHERE id = $1 AND status = 'sending';

-- name: failing_numbers
SELECT patient_id, number_problem, updated_at FROM contacts
WHERE clinic_id = $1 AND number_problem IS NOT NULL ORDER BY updated_at DESC LIMIT $2;

-- name: replies_for_staff
SELECT id, patient_id, booking_id, body, interpretation, received_at FROM inbound_messages
WHERE clinic_id = $1
  AND interpretation NOT IN ('confirm', 'reschedule', 'ride', 'take_slot', 'opt_out', 'opt_in')
ORDER BY received_at DESC LIMIT $2;

-- name: insert_offer
INSERT INTO waitlist_offers (offer_id, patient_id, clinic_id, clinic_name, clinic_phone,
                             site_name, site_timezone, starts_at, language)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
RETURNING offer_id;

-- name: offer_text
INSERT INTO texts (clinic_id, patient_id, offer_id, kind, due_at, valid_until)
VALUES ($1, $2, $3, $4, now(), $5);

-- name: offer_taken
-- The slot went to someone else: returns whether this patient had been told of it.
WITH o AS (UPDATE waitlist_offers SET status = 'taken'
           WHERE offer_id = $1 AND patient_id = $2 AND status = 'open' RETURNING offer_id),
     c AS (UPDATE texts SET status = 'cancelled', status_reason = 'slot taken'
           WHERE offer_id = $1 AND patient_id = $2 AND status = 'pending' RETURNING id)
SELECT EXISTS (SELECT 1 FROM o) AND EXISTS (
    SELECT 1 FROM texts WHERE offer_id = $1 AND patient_id = $2 AND kind = 'waitlist_offer'
      AND status = 'sent');

-- name: open_offer_for
SELECT offer_id FROM waitlist_offers
WHERE patient_id = $1 AND status = 'open' AND starts_at > now()
ORDER BY created_at DESC LIMIT 1;

-- name: offer_accepted
UPDATE waitlist_offers SET status = 'accepted' WHERE offer_id = $1 AND patient_id = $2;

-- name: latest_appointment
SELECT * FROM appointments WHERE patient_id = $1 ORDER BY starts_at DESC LIMIT 1;

-- name: follow_up_text
INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at, valid_until)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: policy
SELECT * FROM clinic_policies WHERE clinic_id = $1;

-- name: upsert_policy
INSERT INTO clinic_policies (clinic_id, quiet_hours_start, quiet_hours_end, daily_cap, weekly_cap,
                             critical_past_caps, disabled_kinds)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (clinic_id) DO UPDATE
    SET quiet_hours_start = EXCLUDED.quiet_hours_start, quiet_hours_end = EXCLUDED.quiet_hours_end,
        daily_cap = EXCLUDED.daily_cap, weekly_cap = EXCLUDED.weekly_cap,
        critical_past_caps = EXCLUDED.critical_past_caps, disabled_kinds = EXCLUDED.disabled_kinds,
        updated_at = now()
RETURNING *;

-- name: sent_since
-- Texts sent to a patient since each moment (for the daily and weekly caps).
SELECT count(*) FILTER (WHERE sent_at >= $2) AS today, count(*) FILTER (WHERE sent_at >= $3) AS week
FROM texts WHERE patient_id = $1 AND status = 'sent' AND sent_at >= least($2, $3);
