-- Verification codes for the public booking page (services/notifier/codes.py).

-- name: start_verification_text
-- A request's text, once: no row back if it was already handled.
INSERT INTO verification_texts (request_id, clinic_id) VALUES ($1, $2)
ON CONFLICT (request_id) DO NOTHING
RETURNING id;

-- name: settle_verification_text
UPDATE verification_texts SET status = $2, reason = $3, sid = $4, updated_at = now()
WHERE id = $1;

-- name: number_opted_out
SELECT EXISTS (SELECT 1 FROM number_opt_outs WHERE phone_e164 = $1);

