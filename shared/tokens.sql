-- Staff tokens as every service checks them (shared/tokens.py).

-- name: token_key
-- Key $1's network and public key, and whether session $2 ended: one round trip per check.
SELECT k.clinic_id, k.public_key,
       EXISTS (SELECT 1 FROM ended_sessions WHERE session_id = $2) AS ended
FROM token_keys k WHERE k.kid = $1;

-- name: keep_token_key
INSERT INTO token_keys (kid, clinic_id, public_key) VALUES ($1, $2, $3)
ON CONFLICT (kid) DO NOTHING;

-- name: end_session
INSERT INTO ended_sessions (session_id, clinic_id, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (session_id) DO NOTHING;

-- name: forget_expired_sessions
-- Sessions past their expiry: their tokens are expired anyway.
DELETE FROM ended_sessions WHERE expires_at < now() - interval '1 day';
