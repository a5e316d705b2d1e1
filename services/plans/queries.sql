-- The plans service's named queries, loaded by services/plans/store.py (the only module that
-- uses them; it turns their rows into the frozen dataclasses of services/plans/model.py).

-- === Plans ==============================================================================

-- fragment: plan_columns
id, clinic_id, patient_id, template, template_version, definition, modality, phase,
sessions_target, sessions_booked, sessions_completed, sessions_cancelled, sessions_missed,
next_due_from, next_due_by, created_at, updated_at

-- name: insert_plans
-- New plans; one that would be a second open plan for the same treatment is not inserted.
INSERT INTO plans (id, clinic_id, patient_id, template, template_version, definition, modality,
                   sessions_target, created_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::integer[],
                     $6::jsonb[], $7::text[], $8::integer[], $9::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING
-- include: plan_columns
;

-- name: get_plan
SELECT
-- include: plan_columns
FROM plans WHERE id = $1 AND clinic_id = $2;

-- name: lock_plan
SELECT
-- include: plan_columns
FROM plans WHERE id = $1 FOR UPDATE;

-- name: plans_of_patient
SELECT
-- include: plan_columns
FROM plans WHERE clinic_id = $1 AND patient_id = $2 ORDER BY created_at, id;

-- name: plans_of_bookings
-- The plan each of the bookings counts in (those in one), locked.
SELECT s.booking_id, p.id, p.clinic_id, p.patient_id, p.template, p.template_version,
       p.definition, p.modality, p.phase, p.sessions_target, p.sessions_booked,
       p.sessions_completed, p.sessions_cancelled, p.sessions_missed, p.next_due_from,
       p.next_due_by, p.created_at, p.updated_at
FROM plan_sessions s JOIN plans p ON p.id = s.plan_id
WHERE s.booking_id = ANY($1::uuid[])
FOR UPDATE OF p;

-- name: open_plans_of
SELECT
-- include: plan_columns
FROM plans
WHERE patient_id = ANY($1::uuid[]) AND phase NOT IN ('completed', 'discontinued')
ORDER BY created_at
FOR UPDATE;

-- name: save_progress_many
-- A plan's recomputed state, for many plans in one statement (one array per column).
UPDATE plans p SET phase = v.phase, sessions_booked = v.booked, sessions_completed = v.completed,
                   sessions_cancelled = v.cancelled, sessions_missed = v.missed,
                   next_due_from = v.due_from, next_due_by = v.due_by, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::integer[], $5::integer[], $6::integer[],
            $7::timestamptz[], $8::timestamptz[])
     AS v (id, phase, booked, completed, cancelled, missed, due_from, due_by)
WHERE p.id = v.id;

-- name: discontinue
UPDATE plans SET phase = 'discontinued', updated_at = now()
WHERE id = $1 AND clinic_id = $2 AND phase NOT IN ('completed', 'discontinued')
RETURNING
-- include: plan_columns
;

-- === Sessions ===========================================================================

-- name: upsert_sessions
-- The sessions as booking events say, each applied only if newer than what we have (booking
-- bumps the version on every change): duplicates and stale, out-of-order events change
-- nothing. Returns the booking ids of the rows applied.
INSERT INTO plan_sessions (booking_id, plan_id, session_type, is_dosing, starts_at, status, version,
                           clinic_id, patient_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::timestamptz[],
                     $6::text[], $7::integer[], $8::uuid[], $9::uuid[])
ON CONFLICT (booking_id) DO UPDATE
    SET starts_at = EXCLUDED.starts_at, status = EXCLUDED.status, version = EXCLUDED.version,
        plan_id = coalesce(plan_sessions.plan_id, EXCLUDED.plan_id), updated_at = now()
    WHERE plan_sessions.version < EXCLUDED.version
RETURNING booking_id;

-- name: adopt_sessions
-- A new plan takes the patient's recent sessions that had no plan: preparation and
-- integration sessions, and dosing sessions of its treatment (the session types in $5).
UPDATE plan_sessions SET plan_id = $1
WHERE patient_id = $2 AND clinic_id = $3 AND plan_id IS NULL
  AND starts_at > $4::timestamptz - interval '120 days'
  AND (NOT is_dosing OR session_type = ANY($5::text[]));

-- name: sessions_of_plan
SELECT booking_id, session_type, is_dosing, starts_at, status, version
FROM plan_sessions WHERE plan_id = $1 ORDER BY starts_at, booking_id;

-- name: sessions_of_plans
SELECT plan_id, booking_id, session_type, is_dosing, starts_at, status, version
FROM plan_sessions WHERE plan_id = ANY($1::uuid[]) ORDER BY starts_at, booking_id;

-- name: patients_with_unplanned_sessions
SELECT DISTINCT patient_id FROM plan_sessions
WHERE plan_id IS NULL AND patient_id = ANY($1::uuid[]);

-- === Durable timers =====================================================================

-- name: set_timers
-- A timer per (plan, kind, ref) key, many at once (each key at most once). A timer whose
-- due time is unchanged keeps its fired mark (it fires once per due time).
INSERT INTO plan_timers (plan_id, kind, ref, due_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (plan_id, kind, ref) DO UPDATE
    SET due_at = EXCLUDED.due_at,
        fired_at = CASE WHEN plan_timers.due_at = EXCLUDED.due_at THEN plan_timers.fired_at END;

-- name: drop_timers
-- Timers not fired yet, by (plan, kind, ref) key, many at once.
DELETE FROM plan_timers t
USING unnest($1::uuid[], $2::text[], $3::text[]) AS d (plan_id, kind, ref)
WHERE t.plan_id = d.plan_id AND t.kind = d.kind AND t.ref = d.ref AND t.fired_at IS NULL;

-- name: drop_plan_timers
-- Every timer of a plan not fired yet.
DELETE FROM plan_timers WHERE plan_id = $1 AND fired_at IS NULL;

-- name: claim_due_timers
-- Locks each due timer together with its plan, skipping any a consumer is working on: the
-- consumer locks plan then timers, so taking both at once (never waiting) cannot deadlock.
SELECT t.id, t.plan_id, t.kind, t.ref, t.due_at FROM plan_timers t JOIN plans p ON p.id = t.plan_id
WHERE t.fired_at IS NULL AND t.due_at <= now()
ORDER BY t.due_at LIMIT $1 FOR UPDATE OF t, p SKIP LOCKED;

-- name: mark_fired
UPDATE plan_timers SET fired_at = now() WHERE id = $1;

-- name: next_timer_at
SELECT min(due_at) FROM plan_timers WHERE fired_at IS NULL;

-- name: timer_queue
-- Durable timers not fired yet, by kind: how many, how many overdue by more than $1 seconds.
SELECT kind, count(*) AS pending,
       count(*) FILTER (WHERE due_at < now() - make_interval(secs => $1)) AS overdue
FROM plan_timers WHERE fired_at IS NULL GROUP BY kind ORDER BY kind;

-- === REMS monitoring forms ==============================================================

-- name: insert_rems_form
INSERT INTO rems_forms (booking_id, plan_id, due_at) VALUES ($1, $2, $3)
ON CONFLICT (booking_id) DO NOTHING
RETURNING booking_id;

-- name: rems_form
SELECT booking_id, due_at, filed_at, filed_by FROM rems_forms WHERE booking_id = $1;

-- name: rems_forms_of_plans
SELECT plan_id, booking_id, due_at, filed_at, filed_by FROM rems_forms
WHERE plan_id = ANY($1::uuid[]) ORDER BY due_at;

-- name: file_rems_form
UPDATE rems_forms SET filed_at = now(), filed_by = $3
WHERE booking_id = $1 AND plan_id = $2
RETURNING booking_id, due_at, filed_at, filed_by;

-- === Patients, clinics' settings, templates =============================================

-- name: upsert_patient
INSERT INTO patients (id, clinic_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING;

-- name: patient_known
SELECT EXISTS (SELECT 1 FROM patients WHERE id = $1 AND clinic_id = $2);

-- name: auto_create_of
-- Whether each clinic starts plans on its own ($2: the default for clinics with no setting).
SELECT c.clinic_id, coalesce(s.auto_create_plans, $2) AS auto_create
FROM unnest($1::uuid[]) AS c (clinic_id) LEFT JOIN clinic_settings s USING (clinic_id);

-- name: set_auto_create
INSERT INTO clinic_settings (clinic_id, auto_create_plans) VALUES ($1, $2)
ON CONFLICT (clinic_id) DO UPDATE SET auto_create_plans = EXCLUDED.auto_create_plans
RETURNING clinic_id, auto_create_plans;

-- name: templates_for
SELECT DISTINCT ON (code) code, version, clinic_id, definition FROM plan_templates
WHERE clinic_id = $1 OR clinic_id IS NULL
ORDER BY code, clinic_id IS NULL, version DESC;

-- name: latest_templates
-- The newest version of each template ($1[i]) for each clinic ($2[i]): the clinic's own
-- version first, else the built-in one.
SELECT DISTINCT ON (w.code, w.clinic_id) w.code, w.clinic_id, t.version, t.definition
FROM unnest($1::text[], $2::uuid[]) AS w (code, clinic_id)
JOIN plan_templates t ON t.code = w.code AND (t.clinic_id = w.clinic_id OR t.clinic_id IS NULL)
ORDER BY w.code, w.clinic_id, t.clinic_id IS NULL, t.version DESC;

-- name: add_template_version
INSERT INTO plan_templates (code, version, clinic_id, definition)
SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM plan_templates WHERE code = $1
RETURNING code, version, clinic_id, definition;

-- name: patient_owners
-- Which network each of these patients belongs to (the audit trail: a refused cross-network read).
SELECT id, clinic_id FROM patients WHERE id = ANY($1::uuid[]);
