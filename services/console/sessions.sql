-- The console's sessions (services/console/sessions.py): who is signed in, in which browser.

-- name: insert_session
INSERT INTO sessions (id_hash, csrf_token, staff_id, clinic_id, session_id, name, role,
                      language, token, token_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: delete_idle_sessions
DELETE FROM sessions WHERE last_seen_at < now() - $1::interval;

-- name: session_by_hash
SELECT * FROM sessions WHERE id_hash = $1;

-- name: touch_session
UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1;

-- name: last_seen
SELECT last_seen_at FROM sessions WHERE id_hash = $1;

-- name: delete_session
DELETE FROM sessions WHERE id_hash = $1;

-- name: refresh_token
UPDATE sessions SET token = $2, token_expires_at = $3, role = $4, name = $5 WHERE id_hash = $1;

-- name: set_language
UPDATE sessions SET language = $2 WHERE id_hash = $1;
