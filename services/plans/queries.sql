-- name: open_plan_for
SELECT * FROM plans
WHERE patient_id = $1 AND modality = $2 AND phase NOT IN ('completed', 'discontinued')
FOR UPDATE;

-- name: any_open_plan_for
SELECT * FROM plans
WHERE patient_id = $1 AND phase NOT IN ('completed', 'discontinued')
ORDER BY created_at DESC LIMIT 1 FOR UPDATE;

-- name: insert_plan
INSERT INTO plans (id, clinic_id, patient_id, template, modality, sessions_target)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: upsert_session
INSERT INTO plan_sessions (booking_id, plan_id, session_type, is_dosing, starts_at, version)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (booking_id) DO UPDATE
    SET starts_at = EXCLUDED.starts_at, version = EXCLUDED.version, updated_at = now()
    WHERE plan_sessions.version < EXCLUDED.version;

-- name: counts
SELECT count(*) FILTER (WHERE is_dosing AND status IN ('booked', 'completed')) AS booked,
       count(*) FILTER (WHERE is_dosing AND status = 'completed') AS completed,
       min(starts_at) FILTER (WHERE status = 'booked' AND starts_at > now()) AS next_session_at
FROM plan_sessions WHERE plan_id = $1;

-- name: touch_plan
UPDATE plans SET updated_at = now() WHERE id = $1;

-- name: get_plan
SELECT * FROM plans WHERE id = $1;

-- name: plan_sessions
SELECT booking_id, session_type, is_dosing, starts_at, status, version
FROM plan_sessions WHERE plan_id = $1 ORDER BY starts_at;

-- name: plans_of_patient
SELECT * FROM plans WHERE patient_id = $1 ORDER BY created_at;
