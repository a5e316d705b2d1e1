-- Purges of the tables every service has (shared/retention.py). Each takes $1 the period in
-- seconds, $2 the most rows to delete, $3 the time to count back from (NULL: now), and
-- deletes a small batch of rows past the period; rows another instance is deleting are
-- skipped (SKIP LOCKED), so several instances purge side by side.

-- name: purge_processed_events
DELETE FROM processed_events WHERE ctid IN (
    SELECT ctid FROM processed_events
    WHERE processed_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED);

-- name: purge_sent_outbox
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE sent_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED);

-- name: purge_resolved_dead_letters
-- Replayed or discarded letters, with the record of what was done with them.
WITH gone AS (
    SELECT id FROM dead_letters
    WHERE status <> 'pending'
      AND resolved_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED
), actions AS (
    DELETE FROM dead_letter_actions WHERE dead_letter_id IN (SELECT id FROM gone)
)
DELETE FROM dead_letters WHERE id IN (SELECT id FROM gone);
