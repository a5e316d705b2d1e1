-- Verification codes wait here, sealed, for the code sender (services/notifier/codes.py)
-- instead of being sent while the consumer's batch waits: the number, the sealed code (never
-- the code itself), what the text says and until when it is worth sending. All of it is
-- cleared once the text is settled (sent, failed or skipped).
ALTER TABLE verification_texts
    ADD COLUMN phone_e164  text,
    ADD COLUMN sealed_code text,
    ADD COLUMN language    text,
    ADD COLUMN clinic_name text,
    ADD COLUMN expires_at  timestamptz,
    ADD COLUMN claimed_at  timestamptz;
CREATE INDEX verification_texts_waiting ON verification_texts (id) WHERE sealed_code IS NOT NULL;

-- Wake the code senders when a code waits.
CREATE TRIGGER verification_texts_notify AFTER INSERT ON verification_texts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_workers('codes');
