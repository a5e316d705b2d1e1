-- Verification codes for the public booking page (services/notifier/codes.py).

-- name: queue_verification_text
-- A request's code, once, to be sent by the code sender: no row back if it was already
-- handled (a redelivery).
INSERT INTO verification_texts (request_id, clinic_id, phone_e164, sealed_code, language,
                                clinic_name, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (request_id) DO NOTHING
RETURNING id;

-- name: claim_verification_texts
-- Up to $1 codes waiting to be sent (or claimed more than $2 seconds ago by a sender that did
-- not settle them: it stopped), claimed now.
UPDATE verification_texts SET claimed_at = now()
WHERE id IN (SELECT id FROM verification_texts
             WHERE sealed_code IS NOT NULL
               AND (claimed_at IS NULL OR claimed_at < now() - make_interval(secs => $2))
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id, request_id, phone_e164, sealed_code, language, clinic_name, expires_at;

-- name: settle_verification_text
-- The outcome; the number and the sealed code are not kept.
UPDATE verification_texts
SET status = $2, reason = $3, sid = $4, updated_at = now(), phone_e164 = NULL,
    sealed_code = NULL, clinic_name = NULL
WHERE id = $1;

-- name: number_opted_out
SELECT EXISTS (SELECT 1 FROM number_opt_outs WHERE phone_e164 = $1);
