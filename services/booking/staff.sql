-- Staff accounts, sign-in and sessions (services/booking/staff.py).

-- name: insert_staff
INSERT INTO staff (id, clinic_id, email, name, role, language, enrolment_hash,
                   enrolment_expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
RETURNING id, clinic_id, email, name, role, language, created_at;

-- name: list_staff
SELECT id, clinic_id, email, name, role, language, disabled_at, created_at, created_by,
       password_hash IS NOT NULL AS enrolled, totp_secret IS NOT NULL AS has_totp
FROM staff WHERE clinic_id = $1 ORDER BY lower(name), id;

-- name: get_staff
SELECT id, clinic_id, email, name, role, language, disabled_at, created_at, created_by,
       password_hash IS NOT NULL AS enrolled, totp_secret IS NOT NULL AS has_totp
FROM staff WHERE id = $1 AND clinic_id = $2;

-- name: staff_for_sign_in
SELECT * FROM staff WHERE lower(email) = lower($1);

-- name: staff_by_id
SELECT * FROM staff WHERE id = $1;

-- name: staff_by_enrolment
SELECT * FROM staff
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
