-- Named queries of the ops figures' history (shared/ops_history.py).

-- name: record_sample
-- The sample of the current period of $1 seconds ($2-$5: lag, outbox backlog, age of its
-- oldest row, dead letters pending); samples older than $6 seconds go.
WITH gone AS (DELETE FROM ops_samples WHERE at < now() - make_interval(secs => $6))
INSERT INTO ops_samples AS s (at, lag, outbox_backlog, outbox_oldest_age_seconds, dead_letters)
VALUES (to_timestamp(floor(extract(epoch FROM now()) / $1) * $1), $2, $3, $4, $5)
ON CONFLICT (at) DO UPDATE
SET lag = excluded.lag, outbox_backlog = excluded.outbox_backlog,
    outbox_oldest_age_seconds = excluded.outbox_oldest_age_seconds,
    dead_letters = excluded.dead_letters;

-- name: samples_since
-- The samples of the last $1 minutes, oldest first.
SELECT at, lag, outbox_backlog, outbox_oldest_age_seconds, dead_letters
FROM ops_samples WHERE at > now() - make_interval(mins => $1) ORDER BY at;
