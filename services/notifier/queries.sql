-- Named queries of the notifier's texts: scheduled from events, dispatched, their receipts,
-- sending pauses, and the clinics' policies (loaded by services/notifier/store.py).

-- name: upsert_contact
INSERT INTO contacts (patient_id, clinic_id, phone_e164, language, sms_consent)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (patient_id) DO UPDATE
    SET phone_e164 = EXCLUDED.phone_e164, language = EXCLUDED.language,
        sms_consent = EXCLUDED.sms_consent, updated_at = now();

-- name: upsert_appointments
-- Appointments from booking events (one row per booking): returns the bookings stored, i.e.
-- all but those we already hold a newer version of.
WITH stored AS (
    INSERT INTO appointments (booking_id, clinic_id, patient_id, version, schedule_version,
                              clinic_name, clinic_phone, site_name, site_address, site_phone,
                              site_timezone, session_type, is_dosing, fasting_rule, language,
                              starts_at, ends_at, site_id, site_region, clinic_sms_name,
                              site_sms_name, ride_contact_name, ride_contact_phone, mode,
                              join_link, patient_timezone, support_name, support_phone,
                              prep_items)
    SELECT b, c, p, v, v, cn, cp, sn, sa, sp, tz, st, d, f, l, s, e, si, sr, csn, ssn, rn, rp,
           m, j, ptz, sun, sup, pi
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::boolean[],
                $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[], $17::uuid[],
                $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],
                $24::text[], $25::text[], $26::text[], $27::text[], $28::text[])
        AS a(b, c, p, v, cn, cp, sn, sa, sp, tz, st, d, f, l, s, e, si, sr, csn, ssn, rn, rp,
             m, j, ptz, sun, sup, pi)
    ON CONFLICT (booking_id) DO UPDATE
        SET version = EXCLUDED.version, schedule_version = EXCLUDED.version,
            starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
            ride_contact_name = EXCLUDED.ride_contact_name,
            ride_contact_phone = EXCLUDED.ride_contact_phone, join_link = EXCLUDED.join_link,
            patient_timezone = EXCLUDED.patient_timezone,
            support_name = EXCLUDED.support_name, support_phone = EXCLUDED.support_phone,
            prep_items = EXCLUDED.prep_items, updated_at = now()
        WHERE appointments.version < EXCLUDED.version
    RETURNING booking_id
)
SELECT coalesce(array_agg(booking_id), '{}') FROM stored;

-- name: pick_due
-- Step 1 of the dispatcher's design, first half: a batch of due texts with their context
-- (see text_context), locked until the dispatcher's transaction ends; other dispatchers pass
-- them by (SKIP LOCKED). $1: critical kinds (see text_context); $2: batch size, which
-- store.pick_due_sql writes in as a number (a LIMIT parameter made PostgreSQL plan this
-- join again for every batch).
WITH picked AS (
    SELECT * FROM texts WHERE status = 'pending' AND due_at <= now()
    ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
),
-- include: text_context

-- name: claim_picked
-- Step 1, second half, in the transaction of pick_due: the picked texts that go now ($1)
-- are claimed (status 'sending', with the body about to go, $2, its $3 segments and the
-- version of the template it was rendered with, $4: 0 for the built-in words); the others
-- ($7) are settled ($8 their new status, $9 why, $10 a new due time or NULL). A claim is
-- marked handed over at once (the text may reach the provider within milliseconds),
-- carries the dispatcher's lease ($5, see release_stale_claims) and its time, returned,
-- which is the claim's token: every later write about the text checks it is still theirs.
-- The patients in $6 are given their "reply STOP" notice with the first text claimed for
-- them. (Two lists, so that a batch whose texts all go passes no column of NULLs.)
WITH u AS MATERIALIZED (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::integer[])
        AS u(id, body, segments, template_version)
), s AS MATERIALIZED (
    SELECT * FROM unnest($7::bigint[], $8::text[], $9::text[], $10::timestamptz[])
        AS s(id, status, reason, due_at)
), claimed AS (
    UPDATE texts t SET status = 'sending', status_reason = NULL, body = u.body,
                       segments = u.segments, template_version = u.template_version,
                       claimed_at = now(), claimed_by = $5,
                       handed_at = now(), attempts = t.attempts + 1
    FROM u WHERE t.id = ANY($1::bigint[]) AND t.id = u.id
), settled AS (
    UPDATE texts t SET status = s.status, status_reason = s.reason,
                       due_at = coalesce(s.due_at, t.due_at), body = NULL, segments = NULL,
                       template_version = NULL, claimed_at = now(), claimed_by = $5,
                       handed_at = now(), attempts = t.attempts + 1
    FROM s WHERE t.id = ANY($7::bigint[]) AND t.id = s.id
), notice AS (
    UPDATE contacts SET stop_notice_sent = true
    WHERE patient_id = ANY($6::uuid[]) AND NOT stop_notice_sent
)
SELECT now();

-- name: hand_over
-- Step 2, for texts whose turn came late (the sender's pacing made them wait, or it came
-- more than `RECHECK_AFTER` after the claim): in one statement, each text ($1 id, $2 claim)
-- is handed over again only if its claim is still the dispatcher's and the text still
-- stands: its appointment neither moved nor over (nor its ride arranged, for a ride
-- reminder), the patient's consent standing and number not refused, the number it goes to
-- not opted out, the slot still open.
-- `handed_at` keeps the claim from being released as stale while the provider call is
-- under way. Only a column no index holds changes, so the row is updated in place (HOT).
-- Returns the texts that may go.
WITH u AS MATERIALIZED (
    SELECT *, 'sending' AS status FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, claim)
)
UPDATE texts t SET handed_at = clock_timestamp()
FROM u
WHERE t.id = ANY($1::bigint[]) AND t.id = u.id AND t.status = u.status
  AND t.claimed_at = u.claim
  AND NOT EXISTS (
      SELECT 1 FROM appointments a
      WHERE a.booking_id = t.booking_id AND t.kind <> 'missed'
        AND (a.schedule_version <> t.booking_version
             OR a.status IN ('cancelled', 'noshow', 'fulfilled')
             OR (t.kind = 'ride_reminder' AND a.ride_status = 'confirmed')))
  AND NOT EXISTS (
      SELECT 1 FROM contacts c
      WHERE c.patient_id = t.patient_id AND t.kind NOT IN ('pickup', 'support')
        AND (c.number_problem IS NOT NULL OR NOT c.sms_consent))
  AND NOT EXISTS (  -- the number it goes to (the ride contact's for pickup, the support
      SELECT 1 FROM number_opt_outs n  -- person's for support) opted out
      WHERE n.phone_e164 = CASE
          WHEN t.kind = 'pickup'
          THEN (SELECT a.ride_contact_phone FROM appointments a WHERE a.booking_id = t.booking_id)
          WHEN t.kind = 'support'
          THEN (SELECT a.support_phone FROM appointments a WHERE a.booking_id = t.booking_id)
          ELSE (SELECT c.phone_e164 FROM contacts c WHERE c.patient_id = t.patient_id) END)
  AND NOT EXISTS (
      SELECT 1 FROM waitlist_offers o
      WHERE o.offer_id = t.offer_id AND o.patient_id = t.patient_id AND o.status <> 'open')
RETURNING t.id;

-- name: next_due_in
-- Seconds until the next pending text falls due (NULL: none is pending).
SELECT extract(epoch FROM min(due_at) - now())::float8 FROM texts WHERE status = 'pending';

-- fragment: text_context
-- Everything the dispatcher needs about the texts of the query's `picked` rows, in due
-- order: contact, appointment (or slot offer, or for texts about no booking the patient's
-- latest appointment), the clinic's policy with quiet hours resolved site > region >
-- network (NULL: the service's default), and how many texts the patient was sent since the
-- start of their local day and of the last 7 days (the caps; counted only for texts they
-- apply to: not to the driver's, nor to the kinds in $1 when critical texts may pass them).
-- Its columns are `store.DueText`'s fields, in order.
t AS (
    SELECT t.id, t.kind, t.clinic_id, t.patient_id, t.booking_id, t.booking_version,
           t.valid_until, t.due_at, t.attempts, t.offer_id, o.status AS offer_status,
           c.phone_e164, c.language, c.sms_consent, c.stop_notice_sent,
           c.number_problem, a.status AS appointment_status,
           a.schedule_version AS appointment_version,
           coalesce(a.clinic_sms_name, a.clinic_name, o.clinic_sms_name, o.clinic_name,
                    la.clinic_sms_name, la.clinic_name) AS clinic_name,
           coalesce(a.site_phone, o.site_phone, o.clinic_phone, la.site_phone) AS text_phone,
           coalesce(a.site_sms_name, a.site_name, o.site_sms_name, o.site_name,
                    la.site_sms_name, la.site_name) AS site_name, a.site_address,
           coalesce(a.site_timezone, o.site_timezone, la.site_timezone) AS site_timezone,
           coalesce(a.site_id, o.site_id, la.site_id) AS site_id,
           coalesce(a.site_region, o.site_region, la.site_region) AS site_region,
           coalesce(a.starts_at, o.starts_at) AS starts_at, a.ends_at, a.fasting_rule,
           a.ride_status, third.phone AS ride_contact_phone,
           EXISTS (SELECT 1 FROM number_opt_outs n  -- the number it goes to opted out
                   WHERE n.phone_e164 = coalesce(third.phone, c.phone_e164)) AS number_opted_out,
           coalesce(a.mode, 'clinic') AS mode, a.join_link, a.prep_items,
           -- the recipient's zone: quiet hours apply in it (the driver's: the site's)
           CASE WHEN t.kind = 'pickup' THEN a.site_timezone
                ELSE coalesce(a.patient_timezone, a.site_timezone, o.site_timezone,
                              la.site_timezone) END AS recipient_timezone,
           t.trace_context
    FROM picked t  -- (LIMIT 1: a lookup by key for each text, never a scan of the table)
    LEFT JOIN LATERAL (SELECT * FROM contacts WHERE patient_id = t.patient_id LIMIT 1) c ON true
    LEFT JOIN LATERAL (SELECT * FROM appointments WHERE booking_id = t.booking_id LIMIT 1) a ON true
    -- the driver (pickup) or the support person (support): texts to them go to that number
    LEFT JOIN LATERAL (SELECT CASE WHEN t.kind = 'pickup' THEN a.ride_contact_phone
                                   WHEN t.kind = 'support' THEN a.support_phone END AS phone) third
        ON true
    LEFT JOIN LATERAL (SELECT * FROM waitlist_offers
                       WHERE offer_id = t.offer_id AND patient_id = t.patient_id LIMIT 1) o ON true
    LEFT JOIN LATERAL (
        SELECT clinic_name, clinic_sms_name, site_phone, site_name, site_sms_name, site_timezone,
               site_id, site_region
        FROM appointments WHERE patient_id = t.patient_id AND t.booking_id IS NULL
        ORDER BY starts_at DESC LIMIT 1) la ON true
)
SELECT t.*, p.daily_cap, p.weekly_cap, p.critical_past_caps, p.disabled_kinds,
       coalesce(qs.quiet_hours_start, qr.quiet_hours_start, p.quiet_hours_start) AS quiet_start,
       coalesce(qs.quiet_hours_end, qr.quiet_hours_end, p.quiet_hours_end) AS quiet_end,
       coalesce(sent.counts[1], 0) AS sent_today, coalesce(sent.counts[2], 0) AS sent_week
FROM t
LEFT JOIN clinic_policies p ON p.clinic_id = t.clinic_id
LEFT JOIN quiet_hours_overrides qs ON qs.clinic_id = t.clinic_id AND qs.site_id = t.site_id
LEFT JOIN quiet_hours_overrides qr ON qr.clinic_id = t.clinic_id AND qr.region = t.site_region
-- The counts are asked only of texts the caps apply to (a CASE: the other texts, most of them
-- critical, pay nothing for them; as a LATERAL join gated by its WHERE, each text paid ~1 us
-- of PostgreSQL's CPU for an aggregate over no rows).
LEFT JOIN LATERAL (
    SELECT CASE WHEN t.site_timezone IS NOT NULL AND t.kind NOT IN ('pickup', 'support')
                     AND NOT (t.kind = ANY($1::text[]) AND coalesce(p.critical_past_caps, true))
           THEN (SELECT ARRAY[count(*) FILTER (WHERE s.sent_at >= day.start), count(*)]
                 FROM (SELECT date_trunc('day', now() AT TIME ZONE t.site_timezone) AS local)
                          midnight,
                      LATERAL (SELECT midnight.local AT TIME ZONE t.site_timezone AS start) day,
                      texts s
                 WHERE s.patient_id = t.patient_id AND s.status = 'sent'
                   AND s.sent_at >= (midnight.local - interval '6 days')
                                    AT TIME ZONE t.site_timezone)
           END AS counts  -- {today, 7 days}, or NULL: not counted
) sent ON true
ORDER BY t.due_at, t.id;

-- name: texts_in_context
-- The texts $2 with their context (see text_context; $1: critical kinds).
WITH picked AS (SELECT * FROM texts WHERE id = ANY($2::bigint[])),
-- include: text_context

-- name: settle_claimed
-- Claimed texts that did not go out after all get their status ($1-$5: id, claim, status,
-- reason, new due time or NULL); a claim no longer the dispatcher's is left alone.
-- How these updates of claimed texts are planned: the ids are looked up by primary key
-- (`id = ANY`), and the status they expect comes from the MATERIALIZED rows, a join
-- clause: a literal `status = 'sending'` would be estimated from statistics that see
-- almost no claimed texts (one row), and PostgreSQL would scan the table for "that row".
WITH u AS MATERIALIZED (
    SELECT *, 'sending' AS claimed
    FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::timestamptz[])
        AS u(id, claim, status, reason, due_at)
)
UPDATE texts t SET status = u.status, status_reason = u.reason,
                   due_at = coalesce(u.due_at, t.due_at)
FROM u WHERE t.id = ANY($1::bigint[]) AND t.id = u.id AND t.status = u.claimed
             AND t.claimed_at = u.claim;

-- name: mark_sent
-- Step 3: the provider took the texts ($1-$3: id, claim, SID): each is recorded as sent
-- with its `SmsSent` event, written to the outbox here (`sms_sent_events`: generated from
-- the pydantic model by `shared.outbox.insert_events_sql`, see store.py;
-- tests/test_notifier_events.py checks that these rows read as the events the Python model
-- makes). Returns the texts recorded (not those recorded meanwhile from their receipt, nor
-- claims lost to another dispatcher).
WITH u AS MATERIALIZED (
    SELECT *, 'sending' AS status
    FROM unnest($1::bigint[], $2::timestamptz[], $3::text[]) AS u(id, claim, sid)
), sent AS (
    UPDATE texts t SET status = 'sent', sent_at = now(), provider_sid = u.sid
    FROM u WHERE t.id = ANY($1::bigint[]) AND t.id = u.id AND t.status = u.status
                 AND t.claimed_at = u.claim
    RETURNING t.id, t.clinic_id, t.patient_id, t.booking_id, t.kind, t.segments, u.sid,
              gen_random_uuid() AS event_id, t.trace_context
), events AS (
-- include: sms_sent_events
)
SELECT id FROM sent;

-- name: release_stop_notices
-- Patients whose first text did not go out after all: the next one carries the notice.
UPDATE contacts SET stop_notice_sent = false WHERE patient_id = ANY($1::uuid[]);

-- name: release_stale_claims
-- Claims whose text has no provider id go back to pending when their dispatcher is gone
-- (its lease, `claimed_by`, lapsed: not renewed in time, or dropped), $2 seconds after they
-- were handed over (Twilio's status callback, which names the text, may still come and
-- record it as sent). Every claim is handed over when made (claim_picked); a claim with no
-- `handed_at` (made before that) goes back at once. Any claim older than $1 seconds goes
-- back too (a stuck dispatcher; the claim tokens keep it from sending). The lapsed leases'
-- rows go in the same statement.
WITH lapsed AS (
    DELETE FROM dispatcher_leases WHERE expires_at <= now()
), live AS MATERIALIZED (  -- read once
    SELECT id FROM dispatcher_leases WHERE expires_at > now()
)
UPDATE texts t SET status = 'pending'
WHERE t.status = 'sending' AND t.provider_sid IS NULL
  AND (coalesce(t.handed_at, t.claimed_at) < now() - make_interval(secs => $1)
       OR (t.claimed_by IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM live WHERE live.id = t.claimed_by)
           AND (t.handed_at IS NULL OR t.handed_at < now() - make_interval(secs => $2))))
RETURNING id;

-- name: take_lease
-- A running dispatcher's lease, for $1 seconds: its id marks the dispatcher's claims.
INSERT INTO dispatcher_leases (expires_at) VALUES (now() + make_interval(secs => $1))
RETURNING id;

-- name: renew_lease
-- Lease $1 for $2 seconds from now, unless it lapsed already (its claims may be going back:
-- the dispatcher takes a new lease). Returns the id if renewed.
UPDATE dispatcher_leases SET renewed_at = now(), expires_at = now() + make_interval(secs => $2)
WHERE id = $1 AND expires_at > now()
RETURNING id;

-- name: drop_lease
-- A dispatcher stopping: its claims go back once their callback grace has passed.
DELETE FROM dispatcher_leases WHERE id = $1;

-- name: set_ride_status
UPDATE appointments SET ride_status = $2, updated_at = now() WHERE booking_id = $1;

-- name: record_sms
-- The local recording sender's text (no Twilio credentials): once per text.
INSERT INTO recorded_sms (text_id, to_e164, body, sid) VALUES ($1, $2, $3, $4)
ON CONFLICT (text_id) DO NOTHING;

-- name: upsert_plan_progress
INSERT INTO plan_progress (plan_id, patient_id, template, sessions_target, sessions_booked,
                           sessions_completed)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (plan_id) DO UPDATE
    SET sessions_target = EXCLUDED.sessions_target, sessions_booked = EXCLUDED.sessions_booked,
        sessions_completed = EXCLUDED.sessions_completed, updated_at = now();

-- name: patient_known
SELECT EXISTS (SELECT 1 FROM contacts WHERE patient_id = $1 AND clinic_id = $2);

-- name: texts_of_patient
SELECT id, booking_id, kind, status, status_reason, due_at, valid_until, sent_at, body,
       segments, provider_sid, template_version
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
-- A new number drops the mark of the old one (a number problem belongs to the number).
UPDATE contacts SET phone_e164 = $2, language = $3, sms_consent = $4, updated_at = now(),
                    number_problem = CASE WHEN phone_e164 = $2 THEN number_problem END
WHERE patient_id = $1;

-- name: text_by_sid
-- The text of a receipt, with the number it went to (the ride contact's for a pickup text).
SELECT t.id, t.clinic_id, t.patient_id, t.booking_id, t.delivery_status, t.attempts,
       CASE WHEN t.kind = 'pickup' THEN a.ride_contact_phone
            WHEN t.kind = 'support' THEN a.support_phone ELSE c.phone_e164 END AS phone,
       t.trace_context
FROM texts t
LEFT JOIN contacts c ON c.patient_id = t.patient_id
LEFT JOIN appointments a ON a.booking_id = t.booking_id
WHERE t.provider_sid = $1
FOR UPDATE OF t;

-- name: keep_early_receipt
-- A receipt for a SID not stored yet (Twilio can call back before the dispatcher has
-- recorded what it sent): kept until the SID is.
INSERT INTO early_receipts (provider_sid, status, error_code) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING;

-- name: sent_per_receipt
-- Twilio's receipt names a text (its callback URL carries the text's id) whose SID is not
-- stored: Twilio took it, but the dispatcher died before recording it (or has not committed
-- yet). Recorded as sent, whatever was decided about it since (it went out), so that it is
-- never sent again. Only texts that were handed over (claimed) have a body and may have gone.
-- A receipt of a SID that failed before (the text was sent again since) is not one of them.
UPDATE texts SET status = 'sent', provider_sid = $2, sent_at = now(),
                 status_reason = 'recorded from its delivery receipt'
WHERE id = $1 AND provider_sid IS NULL AND handed_at IS NOT NULL
  AND NOT ($2 = ANY(coalesce(failed_sids, '{}')))
RETURNING id, clinic_id, patient_id, booking_id, kind, segments;

-- name: sids_of_texts
SELECT id, provider_sid FROM texts WHERE id = ANY($1::bigint[]);

-- name: take_early_receipts
-- The kept receipts whose SID is now stored, removed as they are taken, oldest first.
DELETE FROM early_receipts e USING texts t
WHERE t.provider_sid = e.provider_sid
RETURNING e.provider_sid, e.status, e.error_code, e.received_at;

-- name: update_delivery
UPDATE texts SET delivery_status = $2, delivery_error_code = $3, delivery_updated_at = now()
WHERE id = $1;

-- name: mark_number_problem
-- A number Twilio refused for good ($1): every contact with that number is marked.
UPDATE contacts SET number_problem = $2, updated_at = now()
WHERE phone_e164 = $1 AND number_problem IS DISTINCT FROM $2;

-- name: count_unreachable
-- One more text in a row did not reach the handset of number $1: how many now.
INSERT INTO unreachable_numbers (phone_e164, times) VALUES ($1, 1)
ON CONFLICT (phone_e164) DO UPDATE
    SET times = unreachable_numbers.times + 1, updated_at = now()
RETURNING times;

-- name: reachable
-- A text reached number $1: its unreachable streak is over.
DELETE FROM unreachable_numbers WHERE phone_e164 = $1;

-- name: send_again
-- A sent text ($1) whose receipt said undelivered for a passing reason goes back to pending
-- (due in $2 seconds; $3 why), if still useful then. Its SID is kept as failed (see
-- sent_per_receipt) and its delivery status cleared for the next send's receipts.
UPDATE texts SET status = 'pending', due_at = now() + make_interval(secs => $2),
                 status_reason = $3, provider_sid = NULL, delivery_status = NULL,
                 failed_sids = array_append(coalesce(failed_sids, '{}'), provider_sid)
WHERE id = $1 AND status = 'sent' AND valid_until > now() + make_interval(secs => $2)
RETURNING id;

-- name: pause_sender
-- Sending through sender $1 pauses: Twilio said $2 ($3) about the account or the sender.
INSERT INTO sender_pauses (sender, code, meaning) VALUES ($1, $2, $3)
ON CONFLICT (sender) DO UPDATE SET code = EXCLUDED.code, meaning = EXCLUDED.meaning;

-- name: sender_pause
SELECT code, meaning, since FROM sender_pauses WHERE sender = $1;

-- name: resume_sender
DELETE FROM sender_pauses WHERE sender = $1;

-- name: claim_probe
-- Whether this instance sends the paused sender's next probe (one text, every $2 seconds
-- at most, across instances).
UPDATE sender_pauses SET probed_at = now()
WHERE sender = $1 AND probed_at <= now() - make_interval(secs => $2)
RETURNING sender;

-- name: unclaim_probe
-- The probe found no text to send (they were all being sent, or none was due): the next
-- look may probe.
UPDATE sender_pauses SET probed_at = probed_at - make_interval(secs => $2) WHERE sender = $1;

-- name: failing_numbers
SELECT patient_id, number_problem, updated_at FROM contacts
WHERE clinic_id = $1 AND number_problem IS NOT NULL ORDER BY updated_at DESC LIMIT $2;

-- name: insert_offer
INSERT INTO waitlist_offers (offer_id, patient_id, clinic_id, clinic_name, clinic_phone,
                             site_name, site_timezone, starts_at, language, site_id, site_region,
                             clinic_sms_name, site_sms_name, site_phone)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT DO NOTHING
RETURNING offer_id;

-- name: offer_text
INSERT INTO texts (clinic_id, patient_id, offer_id, kind, due_at, valid_until, trace_context)
VALUES ($1, $2, $3, $4, $5, $6, $7);

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

-- name: latest_site
-- The site of the patient's latest appointment (texts about their course name it).
SELECT site_id, site_region, site_timezone FROM appointments WHERE patient_id = $1
ORDER BY starts_at DESC LIMIT 1;

-- name: follow_up_text
INSERT INTO texts (clinic_id, patient_id, booking_id, booking_version, kind, due_at, valid_until,
                   status, status_reason, trace_context)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: policy
SELECT * FROM clinic_policies WHERE clinic_id = $1;

-- name: policies_for_sites
-- Each network's policy (NULL columns when it has none) with quiet hours resolved for a site
-- (or NULL) in a region (or NULL): site > region > network. $1-$3: clinic, site, region.
SELECT k.clinic_id, k.site_id, k.region, p.daily_cap, p.weekly_cap, p.critical_past_caps,
       p.disabled_kinds,
       coalesce(qs.quiet_hours_start, qr.quiet_hours_start, p.quiet_hours_start) AS quiet_start,
       coalesce(qs.quiet_hours_end, qr.quiet_hours_end, p.quiet_hours_end) AS quiet_end
FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(clinic_id, site_id, region)
LEFT JOIN clinic_policies p ON p.clinic_id = k.clinic_id
LEFT JOIN quiet_hours_overrides qs ON qs.clinic_id = k.clinic_id AND qs.site_id = k.site_id
LEFT JOIN quiet_hours_overrides qr ON qr.clinic_id = k.clinic_id AND qr.region = k.region;

-- name: quiet_hours_overrides
SELECT region, site_id, quiet_hours_start, quiet_hours_end FROM quiet_hours_overrides
WHERE clinic_id = $1 ORDER BY region, site_id;

-- name: delete_quiet_hours_overrides
DELETE FROM quiet_hours_overrides WHERE clinic_id = $1;

-- name: insert_quiet_hours_overrides
INSERT INTO quiet_hours_overrides (clinic_id, region, site_id, quiet_hours_start, quiet_hours_end)
SELECT $1, r, s, qs, qe FROM unnest($2::text[], $3::uuid[], $4::smallint[], $5::smallint[])
    AS u(r, s, qs, qe);

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

-- === Clinics' own words: template overrides, versioned ==================================

-- name: insert_template_override
-- A network's ($1) new version of the template of kind $2 in language $3 ($4 its words,
-- NULL: back to the built-in ones); the next version number (a concurrent save of the same
-- template fails on the primary key).
INSERT INTO template_overrides (clinic_id, kind, language, version, body, accept_ucs2, created_by)
SELECT $1, $2, $3, coalesce(max(version), 0) + 1, $4, $5, $6
FROM template_overrides WHERE clinic_id = $1 AND kind = $2 AND language = $3
RETURNING kind, language, version, body, accept_ucs2, created_by, created_at;

-- name: template_overrides_of_clinic
-- Every version of a network's overrides, newest first for each kind and language.
SELECT kind, language, version, body, accept_ucs2, created_by, created_at
FROM template_overrides WHERE clinic_id = $1
ORDER BY kind, language, version DESC;

-- name: latest_overrides
-- The current override of each template of the networks $1, for the dispatcher.
SELECT DISTINCT ON (clinic_id, kind, language) clinic_id, kind, language, version, body
FROM template_overrides WHERE clinic_id = ANY($1::uuid[])
ORDER BY clinic_id, kind, language, version DESC;

-- name: patient_owners
-- Which network each of these patients belongs to (the audit trail: a refused cross-network read).
SELECT DISTINCT patient_id, clinic_id FROM contacts WHERE patient_id = ANY($1::uuid[]);
