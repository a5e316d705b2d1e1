-- Purges of the notifier's own tables (shared/retention.py): $1 the period in seconds, $2 the
-- most rows to delete, $3 the time to count back from (NULL: now).

-- name: purge_recorded_sms
DELETE FROM recorded_sms WHERE id IN (
    SELECT id FROM recorded_sms
    WHERE recorded_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED);

-- name: purge_early_receipts
-- Kept receipts whose SID never came (a message sent in the dispatcher's crash window).
DELETE FROM early_receipts WHERE ctid IN (
    SELECT ctid FROM early_receipts
    WHERE received_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED);
