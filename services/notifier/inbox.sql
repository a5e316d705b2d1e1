-- Texts people send us (services/notifier/inbox.py) and what staff see of them.

-- name: lock_number
-- Texts from one number are taken one at a time (a STOP and a START in quick succession
-- are applied in order; two STOPs confirm once).
SELECT pg_advisory_xact_lock(hashtext('inbound ' || $1));

-- name: parties_of_number
-- Who a number is to the notifier: the patients whose number it is, and the patients whose
-- ride contact has it (on any of their appointments), each with their clinic network and
-- language.
(SELECT 'patient' AS role, clinic_id, patient_id, language FROM contacts WHERE phone_e164 = $1)
UNION ALL
(SELECT DISTINCT ON (clinic_id, patient_id) 'ride_contact', clinic_id, patient_id, language
 FROM appointments WHERE ride_contact_phone = $1
 ORDER BY clinic_id, patient_id, starts_at DESC)
ORDER BY role, clinic_id, patient_id;

-- name: parties_told
-- The networks, patients and ride contacts that were told of an opt-out (the staff rows of
-- the message that made it).
SELECT clinic_id, patient_ids, ride_contact_of FROM staff_inbox WHERE inbound_id = $1;

-- name: opted_out
SELECT EXISTS (SELECT 1 FROM number_opt_outs WHERE phone_e164 = $1);

-- name: record_opt_out
-- The number opts out (kept from its first opt-out while it stands); true if it is new.
INSERT INTO number_opt_outs (phone_e164, source, inbound_id) VALUES ($1, $2, $3)
ON CONFLICT (phone_e164) DO NOTHING
RETURNING true;

-- name: lift_opt_out
DELETE FROM number_opt_outs WHERE phone_e164 = $1 RETURNING inbound_id;

-- name: next_appointment
SELECT booking_id FROM appointments
WHERE patient_id = $1 AND status = 'booked' AND starts_at > now()
ORDER BY starts_at LIMIT 1;

-- name: clinic_of_patients
-- The name and phone of a clinic network as its latest texts to these patients gave them
-- (its name for texts, the site's number).
SELECT name, phone FROM (
    SELECT coalesce(clinic_sms_name, clinic_name) AS name,
           coalesce(site_phone, clinic_phone) AS phone, starts_at FROM appointments
    WHERE clinic_id = $1 AND patient_id = ANY($2::uuid[])
    UNION ALL
    SELECT coalesce(clinic_sms_name, clinic_name), coalesce(site_phone, clinic_phone), starts_at
    FROM waitlist_offers WHERE clinic_id = $1 AND patient_id = ANY($2::uuid[])
) known ORDER BY starts_at DESC LIMIT 1;

-- name: insert_inbound
-- Once per MessageSid (Twilio retries webhooks): NULL when it was recorded already.
INSERT INTO inbound_messages (message_sid, from_e164, body, patient_id, clinic_id, booking_id,
                              interpretation, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (message_sid) DO NOTHING
RETURNING id;

-- name: insert_staff_row
-- The text as one clinic network that has the number sees it ($3: its patients with that
-- number; $4: its patients whose ride contact has it; $5: whether it changed something).
INSERT INTO staff_inbox (inbound_id, clinic_id, patient_ids, ride_contact_of, acted_on)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (inbound_id, clinic_id) DO NOTHING;

-- name: mark_acted_on
UPDATE staff_inbox SET acted_on = true WHERE inbound_id = $1;

-- fragment: inbox_item
-- An inbox row as the network's staff see it: the matched patient and booking only when
-- they are this network's (a number may be one network's patient and another's driver).
SELECT s.id, m.received_at, m.from_e164, m.body, m.interpretation AS meaning, m.note,
       s.acted_on, CASE WHEN m.clinic_id = s.clinic_id THEN m.patient_id END AS patient_id,
       CASE WHEN m.clinic_id = s.clinic_id THEN m.booking_id END AS booking_id,
       s.patient_ids, s.ride_contact_of, s.read_at, s.read_by
FROM staff_inbox s JOIN inbound_messages m ON m.id = s.inbound_id

-- name: inbox_page
-- A page of a network's inbox, newest first ($2: below this id; $3: unread only; $4: not
-- acted on only; $5: of this meaning only, or NULL; $6: page size).
-- include: inbox_item
WHERE s.clinic_id = $1 AND s.id < $2 AND (NOT $3 OR s.read_at IS NULL)
  AND (NOT $4 OR NOT s.acted_on) AND ($5::text IS NULL OR m.interpretation = $5)
ORDER BY s.id DESC LIMIT $6;

-- name: inbox_item
-- include: inbox_item
WHERE s.id = $1 AND s.clinic_id = $2;

-- name: mark_read
UPDATE staff_inbox SET read_at = coalesce(read_at, now()), read_by = coalesce(read_by, $3)
WHERE id = $1 AND clinic_id = $2
RETURNING id;

-- name: number_of_item
SELECT m.id AS inbound_id, m.from_e164 FROM staff_inbox s JOIN inbound_messages m ON m.id = s.inbound_id
WHERE s.id = $1 AND s.clinic_id = $2;

-- name: opt_outs_page
-- The opted-out numbers of a network's patients and ride contacts (those it has now, and
-- those it was told of when the number opted out), newest first ($2, $3: below this
-- opt-out time and number; $4: page size).
SELECT n.phone_e164, n.opted_out_at, n.source, p.ids AS patient_ids, r.ids AS ride_contact_of
FROM number_opt_outs n
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(DISTINCT id ORDER BY id), '{}') AS ids FROM (
        SELECT patient_id AS id FROM contacts WHERE phone_e164 = n.phone_e164 AND clinic_id = $1
        UNION ALL
        SELECT unnest(patient_ids) FROM staff_inbox WHERE inbound_id = n.inbound_id AND clinic_id = $1
    ) known) p
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(DISTINCT id ORDER BY id), '{}') AS ids FROM (
        SELECT patient_id AS id FROM appointments
        WHERE ride_contact_phone = n.phone_e164 AND clinic_id = $1
        UNION ALL
        SELECT unnest(ride_contact_of) FROM staff_inbox WHERE inbound_id = n.inbound_id AND clinic_id = $1
    ) known) r
WHERE (cardinality(p.ids) > 0 OR cardinality(r.ids) > 0)
  AND (n.opted_out_at, n.phone_e164) < ($2, $3)
ORDER BY n.opted_out_at DESC, n.phone_e164 DESC LIMIT $4;
