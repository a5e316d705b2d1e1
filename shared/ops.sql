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

-- name: lock_pending_dead_letters
SELECT id, consumer, topic, key, value FROM dead_letters
WHERE id = ANY($1::bigint[]) AND status = 'pending' ORDER BY id FOR UPDATE;

-- name: start_replay_job
-- A "replay all" job and its snapshot: the letters pending now (of one consumer, if given).
WITH job AS (
    INSERT INTO dead_letter_replay_jobs (consumer, actor, batch_size) VALUES ($1, $2, $3)
    RETURNING id
), snapshot AS (
    INSERT INTO dead_letter_replay_job_letters (job_id, dead_letter_id)
    SELECT job.id, d.id FROM job, dead_letters d
    WHERE d.status = 'pending' AND ($1::text IS NULL OR d.consumer = $1)
    RETURNING 1
)
SELECT id, (SELECT count(*) FROM snapshot)::int AS total FROM job;

-- name: set_replay_job_total
UPDATE dead_letter_replay_jobs
SET total = $2, status = CASE WHEN $2 = 0 THEN 'done' ELSE status END,
    finished_at = CASE WHEN $2 = 0 THEN now() END
WHERE id = $1;

-- name: running_replay_job
SELECT id FROM dead_letter_replay_jobs WHERE status = 'running';

-- name: get_replay_job
SELECT id, consumer, actor, batch_size, status, total, replayed, skipped, created_at, finished_at
FROM dead_letter_replay_jobs WHERE id = $1;

-- name: list_replay_jobs
SELECT id, consumer, actor, batch_size, status, total, replayed, skipped, created_at, finished_at
FROM dead_letter_replay_jobs ORDER BY id DESC LIMIT $1;

-- name: lock_running_replay_job
-- The running job, unless another instance is replaying a batch of it right now.
SELECT id, actor, batch_size FROM dead_letter_replay_jobs
WHERE status = 'running' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED;

-- name: take_replay_batch
-- The job's next letters, in id order, removed from its snapshot as they are taken.
DELETE FROM dead_letter_replay_job_letters WHERE job_id = $1 AND dead_letter_id IN (
    SELECT dead_letter_id FROM dead_letter_replay_job_letters WHERE job_id = $1
    ORDER BY dead_letter_id LIMIT $2)
RETURNING dead_letter_id;

-- name: advance_replay_job
UPDATE dead_letter_replay_jobs
SET replayed = replayed + $2, skipped = skipped + $3,
    status = CASE WHEN $4 THEN 'done' ELSE status END,
    finished_at = CASE WHEN $4 THEN now() END
WHERE id = $1;
