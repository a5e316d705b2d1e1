-- The idempotent consumer's statements (shared/consumer.py).

-- name: record_processed
-- Consumer $1 takes events $2: returns those it had not processed yet (a redelivered
-- event finds its row and is left out).
WITH ins AS (
    INSERT INTO processed_events (consumer, event_id)
    SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id
)
SELECT coalesce(array_agg(event_id), '{}') FROM ins;

-- name: record_dead_letter
-- Returns the new letter's id, or nothing if this very record was dead-lettered already.
INSERT INTO dead_letters (consumer, topic, partition, "offset", digest, key, value, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (consumer, topic, partition, "offset", digest) DO NOTHING
RETURNING id;
