-- name: plan_of_booking
SELECT p.* FROM plan_sessions s JOIN plans p ON p.id = s.plan_id
WHERE s.booking_id = $1 FOR UPDATE OF p;

-- name: open_plan_for
SELECT * FROM plans
WHERE clinic_id = $1 AND patient_id = $2 AND modality = $3
  AND phase NOT IN ('completed', 'discontinued')
FOR UPDATE;

-- name: any_open_plan_for
SELECT * FROM plans
WHERE clinic_id = $1 AND patient_id = $2 AND phase NOT IN ('completed', 'discontinued')
ORDER BY created_at DESC LIMIT 1 FOR UPDATE;

-- name: auto_create_of
-- Whether each clinic starts plans on its own ($2: the default for clinics with no setting).
SELECT c.clinic_id, coalesce(s.auto_create_plans, $2) AS auto_create
FROM unnest($1::uuid[]) AS c (clinic_id) LEFT JOIN clinic_settings s USING (clinic_id);

-- name: insert_plans
-- New plans; one that would be a second open plan for the same treatment is not inserted.
INSERT INTO plans (id, clinic_id, patient_id, template, template_version, definition, modality,
                   sessions_target, created_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::integer[],
                     $6::jsonb[], $7::text[], $8::integer[], $9::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING *;

-- name: upsert_session
-- Applied only if newer than what we have (booking bumps the version on every change):
-- duplicates and stale, out-of-order events change nothing. Returns a row when applied.
INSERT INTO plan_sessions (booking_id, plan_id, session_type, is_dosing, starts_at, status, version,
                           clinic_id, patient_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (booking_id) DO UPDATE
    SET starts_at = EXCLUDED.starts_at, status = EXCLUDED.status, version = EXCLUDED.version,
        plan_id = coalesce(plan_sessions.plan_id, EXCLUDED.plan_id), updated_at = now()
    WHERE plan_sessions.version < EXCLUDED.version
RETURNING booking_id;

-- name: adopt_sessions
-- A new plan takes the patient's recent sessions that had no plan: preparation and
-- integration sessions, and dosing sessions of its treatment.
UPDATE plan_sessions SET plan_id = $1
WHERE patient_id = $2 AND clinic_id = $3 AND plan_id IS NULL
  AND starts_at > $4::timestamptz - interval '120 days'
  AND (NOT is_dosing OR session_type = $5);

-- name: sessions_of_plan
SELECT booking_id, session_type, is_dosing, starts_at, status, version
FROM plan_sessions WHERE plan_id = $1 ORDER BY starts_at, booking_id;

-- name: save_progress_many
-- A plan's recomputed state, for many plans in one statement (one array per column).
UPDATE plans p SET phase = v.phase, sessions_booked = v.booked, sessions_completed = v.completed,
                   sessions_cancelled = v.cancelled, sessions_missed = v.missed,
                   next_due_from = v.due_from, next_due_by = v.due_by, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::integer[], $5::integer[], $6::integer[],
            $7::timestamptz[], $8::timestamptz[])
     AS v (id, phase, booked, completed, cancelled, missed, due_from, due_by)
WHERE p.id = v.id;

-- name: set_timers
-- set_timer for many (plan, kind, ref) keys at once; each key at most once.
INSERT INTO plan_timers (plan_id, kind, ref, due_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (plan_id, kind, ref) DO UPDATE
    SET due_at = EXCLUDED.due_at,
        fired_at = CASE WHEN plan_timers.due_at = EXCLUDED.due_at THEN plan_timers.fired_at END;

-- name: drop_timers
DELETE FROM plan_timers t
USING unnest($1::uuid[], $2::text[], $3::text[]) AS d (plan_id, kind, ref)
WHERE t.plan_id = d.plan_id AND t.kind = d.kind AND t.ref = d.ref AND t.fired_at IS NULL;

-- name: set_timer
-- A timer whose due time is unchanged keeps its fired mark (it fires once per due time).
INSERT INTO plan_timers (plan_id, kind, ref, due_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (plan_id, kind, ref) DO UPDATE
    SET due_at = EXCLUDED.due_at,
        fired_at = CASE WHEN plan_timers.due_at = EXCLUDED.due_at THEN plan_timers.fired_at END;

-- name: drop_timer
DELETE FROM plan_timers WHERE plan_id = $1 AND kind = $2 AND ref = $3 AND fired_at IS NULL;

-- name: claim_due_timers
-- Locks each due timer together with its plan, skipping any a consumer is working on: the
-- consumer locks plan then timers, so taking both at once (never waiting) cannot deadlock.
SELECT t.* FROM plan_timers t JOIN plans p ON p.id = t.plan_id
WHERE t.fired_at IS NULL AND t.due_at <= now()
ORDER BY t.due_at LIMIT $1 FOR UPDATE OF t, p SKIP LOCKED;

-- name: mark_fired
UPDATE plan_timers SET fired_at = now() WHERE id = $1;

-- name: next_timer_at
SELECT min(due_at) FROM plan_timers WHERE fired_at IS NULL;

-- name: lock_plan
SELECT * FROM plans WHERE id = $1 FOR UPDATE;

-- name: insert_rems_form
INSERT INTO rems_forms (booking_id, plan_id, due_at) VALUES ($1, $2, $3)
ON CONFLICT (booking_id) DO NOTHING
RETURNING booking_id;

-- name: rems_form
SELECT * FROM rems_forms WHERE booking_id = $1;

-- name: rems_forms_of_plan
SELECT booking_id, due_at, filed_at, filed_by FROM rems_forms WHERE plan_id = $1 ORDER BY due_at;

-- name: file_rems_form
UPDATE rems_forms SET filed_at = now(), filed_by = $3
WHERE booking_id = $1 AND plan_id = $2
RETURNING booking_id, due_at, filed_at, filed_by;

-- name: get_plan
SELECT * FROM plans WHERE id = $1 AND clinic_id = $2;

-- name: plans_of_patient
SELECT * FROM plans WHERE clinic_id = $1 AND patient_id = $2 ORDER BY created_at, id;

-- name: upsert_patient
INSERT INTO patients (id, clinic_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING;

-- name: patient_known
SELECT EXISTS (SELECT 1 FROM patients WHERE id = $1 AND clinic_id = $2);

-- name: set_auto_create
INSERT INTO clinic_settings (clinic_id, auto_create_plans) VALUES ($1, $2)
ON CONFLICT (clinic_id) DO UPDATE SET auto_create_plans = EXCLUDED.auto_create_plans
RETURNING *;

-- name: templates_for
SELECT DISTINCT ON (code) code, version, clinic_id, definition FROM plan_templates
WHERE clinic_id = $1 OR clinic_id IS NULL
ORDER BY code, clinic_id IS NULL, version DESC;

-- name: add_template_version
INSERT INTO plan_templates (code, version, clinic_id, definition)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM plan_templates WHERE code = $1
RETURNING code, version, clinic_id, definition;

-- name: discontinue
UPDATE plans SET phase = 'discontinued', updated_at = now()
WHERE id = $1 AND clinic_id = $2 AND phase NOT IN ('completed', 'discontinued')
RETURNING *;

-- name: plans_of_bookings
SELECT s.booking_id, p.* FROM plan_sessions s JOIN plans p ON p.id = s.plan_id
WHERE s.booking_id = ANY($1::uuid[])
FOR UPDATE OF p;

-- name: open_plans_of
SELECT * FROM plans
WHERE patient_id = ANY($1::uuid[]) AND phase NOT IN ('completed', 'discontinued')
ORDER BY created_at
FOR UPDATE;

-- name: upsert_sessions
-- Each row applied only if newer than what we have (see upsert_session).
INSERT INTO plan_sessions (booking_id, plan_id, session_type, is_dosing, starts_at, status, version,
                           clinic_id, patient_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::timestamptz[],
                     $6::text[], $7::integer[], $8::uuid[], $9::uuid[])
ON CONFLICT (booking_id) DO UPDATE
    SET starts_at = EXCLUDED.starts_at, status = EXCLUDED.status, version = EXCLUDED.version,
        plan_id = coalesce(plan_sessions.plan_id, EXCLUDED.plan_id), updated_at = now()
    WHERE plan_sessions.version < EXCLUDED.version
RETURNING booking_id;

-- name: sessions_of_plans
SELECT plan_id, booking_id, session_type, is_dosing, starts_at, status, version
FROM plan_sessions WHERE plan_id = ANY($1::uuid[]) ORDER BY starts_at, booking_id;

-- name: patients_with_unplanned_sessions
SELECT DISTINCT patient_id FROM plan_sessions
WHERE plan_id IS NULL AND patient_id = ANY($1::uuid[]);
