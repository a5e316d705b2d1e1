-- Aggregate reads for staff screens (services/notifier/views.py).

-- name: site_texts
-- For each appointment at a site between two local dates ($3, $4 inclusive, the site's
-- local midnights), its texts (kind, state, delivery) and the patient's replies about it
-- that staff should read. Texts are reached by patient (texts_patient), not by booking.
SELECT coalesce(json_object_agg(a.booking_id, json_build_object(
    'texts', (SELECT coalesce(json_agg(json_build_object(
                  'kind', t.kind, 'status', t.status, 'delivery', t.delivery_status,
                  'error', t.delivery_error_code, 'due_at', t.due_at, 'sent_at', t.sent_at)
                  ORDER BY t.due_at, t.id), '[]')
              FROM texts t WHERE t.patient_id = a.patient_id AND t.booking_id = a.booking_id),
    'replies', (SELECT count(*) FROM inbound_messages m
                JOIN staff_inbox s ON s.inbound_id = m.id AND s.clinic_id = a.clinic_id
                WHERE m.patient_id = a.patient_id AND m.booking_id = a.booking_id
                  AND s.read_at IS NULL AND NOT s.acted_on)
)), '{}')::text
FROM appointments a
WHERE a.clinic_id = $1 AND a.site_id = $2
  AND a.starts_at >= ($3::date::timestamp AT TIME ZONE a.site_timezone)
  AND a.starts_at < (($4::date + 1)::timestamp AT TIME ZONE a.site_timezone);

-- name: patient_messages
-- Every text to a patient (and to their ride contact about their bookings) with its
-- delivery state, and every text they sent us, newest first; no row for a patient not
-- known here (another network's, or not heard of yet).
SELECT json_build_object(
    'texts', (SELECT coalesce(json_agg(json_build_object(
                  'id', t.id, 'booking_id', t.booking_id, 'kind', t.kind, 'status', t.status,
                  'status_reason', t.status_reason, 'due_at', t.due_at, 'sent_at', t.sent_at,
                  'body', t.body, 'delivery', t.delivery_status, 'error', t.delivery_error_code)
                  ORDER BY coalesce(t.sent_at, t.due_at) DESC, t.id DESC), '[]')
              FROM texts t WHERE t.patient_id = $1 AND t.clinic_id = $2),
    'replies', (SELECT coalesce(json_agg(json_build_object(
                    'id', m.id, 'booking_id', m.booking_id, 'body', m.body,
                    'meaning', m.interpretation, 'received_at', m.received_at)
                    ORDER BY m.received_at DESC, m.id DESC), '[]')
                FROM inbound_messages m WHERE m.patient_id = $1 AND m.clinic_id = $2),
    'contact', (SELECT json_build_object('sms_consent', c.sms_consent,
                                         'number_problem', c.number_problem)
                FROM contacts c WHERE c.patient_id = $1 AND c.clinic_id = $2)
)::text
WHERE EXISTS (SELECT 1 FROM contacts WHERE patient_id = $1 AND clinic_id = $2);
