-- The outbox's own statements (shared/outbox.py). Services never write the outbox table:
-- they call `enqueue`, or include the SQL `insert_row_sql` / `insert_events_sql` make.

-- name: insert_rows
-- Events or raw messages, as arrays of topic, key, value, headers, event id, event type,
-- trace context (NULL: none, while tracing is off; unnest pads a NULL array with NULLs).
INSERT INTO outbox (topic, key, value, headers, event_id, event_type, trace_context)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::jsonb[], $5::uuid[], $6::text[],
                     $7::text[]);

-- name: take_relay_lock
SELECT pg_try_advisory_lock(hashtext($1));

-- name: release_relay_lock
SELECT pg_advisory_unlock(hashtext($1));

-- name: start_waiting
-- The relay's lock while it waits for rows of schema $1 (writers notify it then: shared
-- migration 060); taken only when no writer's transaction that did not notify is open.
SELECT pg_try_advisory_lock(hashtext($1 || '.outbox_waiting'));

-- name: stop_waiting
SELECT pg_advisory_unlock(hashtext($1 || '.outbox_waiting'));

-- name: claim_unsent
-- The oldest unsent rows, locked until the batch is published and marked sent (or not).
SELECT id, topic, key, value, headers, event_type, trace_context FROM outbox WHERE sent_at IS NULL
ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED;

-- name: mark_sent
UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[]);

-- name: record_failure
UPDATE outbox SET attempts = attempts + 1, last_error = $2
WHERE id = ANY($1::bigint[]) AND sent_at IS NULL;
