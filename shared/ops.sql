-- Named queries of the ops endpoints (shared/ops_status.py, shared/dead_letters.py): the
-- same tables in every service's schema.

-- name: outbox_backlog
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_seconds,
       count(*) FILTER (WHERE last_error IS NOT NULL) AS failing
FROM outbox WHERE sent_at IS NULL;

-- name: outbox_by_topic
SELECT topic, count(*) AS backlog, max(attempts) AS attempts,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_seconds,
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
FROM outbox WHERE sent_at IS NULL GROUP BY topic ORDER BY topic;

-- name: dead_letter_depth
SELECT consumer, topic, count(*) AS pending
FROM dead_letters WHERE status = 'pending' GROUP BY consumer, topic ORDER BY consumer, topic;

-- name: list_dead_letters
SELECT id, consumer, topic, partition, "offset", error, created_at, status, resolved_at,
       resolved_by, value
FROM dead_letters
WHERE ($1::text IS NULL OR status = $1) AND id > $2
ORDER BY id LIMIT $3;

-- name: get_dead_letter
SELECT id, consumer, topic, partition, "offset", key, value, error, created_at, status,
       resolved_at, resolved_by
FROM dead_letters WHERE id = $1;

-- name: lock_pending_dead_letter
SELECT id, consumer, topic, key, value FROM dead_letters
WHERE id = $1 AND status = 'pending' FOR UPDATE;

-- name: resolve_dead_letter
WITH done AS (
    UPDATE dead_letters SET status = $2, resolved_at = now(), resolved_by = $3 WHERE id = $1
)
INSERT INTO dead_letter_actions (dead_letter_id, action, actor, reason) VALUES ($1, $2, $3, $4);

-- name: dead_letter_actions
SELECT action, actor, reason, at FROM dead_letter_actions WHERE dead_letter_id = $1 ORDER BY id;
