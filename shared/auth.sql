-- API keys as every service keeps them (shared/auth.py; the `api_keys` table is each
-- service's own: booking issues keys, the others keep a copy).

-- name: api_key_by_hash
SELECT clinic_id, role, label FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: copy_api_key
INSERT INTO api_keys (id, clinic_id, key_hash, role, label) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO NOTHING;

-- name: revoke_api_key_copy
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND clinic_id = $2;
