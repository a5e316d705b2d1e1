-- Named queries of the notifier's ops figures (services/notifier/ops.py).

-- name: text_queue
-- pending: waiting for their time; due: their time has come; late: due longer than $1 seconds
-- ago and still not sent; stuck: claimed for sending longer than $1 seconds ago;
-- oldest_due_seconds: how long the oldest due text has waited (the dispatcher's lateness).
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'pending' AND due_at <= now()) AS due,
       count(*) FILTER (WHERE status IN ('pending', 'sending')
                        AND due_at < now() - make_interval(secs => $1)) AS late,
       count(*) FILTER (WHERE status = 'sending'
                        AND claimed_at < now() - make_interval(secs => $1)) AS stuck,
       coalesce(extract(epoch FROM now() - min(due_at) FILTER (
           WHERE status = 'pending' AND due_at <= now())), 0)::float8 AS oldest_due_seconds
FROM texts WHERE status IN ('pending', 'sending');

-- name: text_outcomes
-- What became of the texts of the last $1 hours: sent, delivered or failed, by error code.
SELECT CASE WHEN status = 'failed' THEN 'failed'
            WHEN delivery_status IN ('undelivered', 'failed') THEN 'undelivered'
            WHEN delivery_status = 'delivered' THEN 'delivered'
            ELSE 'sent' END AS outcome,
       coalesce(delivery_error_code, CASE WHEN status = 'failed' THEN status_reason END, '') AS error_code,
       count(*) AS texts
FROM texts
WHERE status IN ('sent', 'failed') AND coalesce(sent_at, claimed_at) > now() - make_interval(hours => $1)
GROUP BY 1, 2 ORDER BY 1, 2;

-- name: texts_per_minute
-- Texts sent, failed and held per minute over the last $1 minutes (the current one last,
-- every minute present): held are those whose time came and that did not go, held back for
-- quiet hours or a paused sender, or skipped (the minute the dispatcher claimed them).
SELECT m AS minute,
       count(t.at) FILTER (WHERE t.outcome = 'sent') AS sent,
       count(t.at) FILTER (WHERE t.outcome = 'failed') AS failed,
       count(t.at) FILTER (WHERE t.outcome = 'held') AS held
FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                     date_trunc('minute', now()), interval '1 minute') AS m
LEFT JOIN (
    SELECT CASE status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed' ELSE 'held' END AS outcome,
           CASE WHEN status = 'sent' THEN sent_at ELSE coalesce(sent_at, claimed_at) END AS at
    FROM texts
    WHERE (status IN ('sent', 'failed', 'skipped') OR (status = 'pending' AND claimed_at IS NOT NULL))
      AND coalesce(sent_at, claimed_at) >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
) AS t ON date_trunc('minute', t.at) = m
GROUP BY m ORDER BY m;

-- name: failing_number_count
SELECT count(*) FROM contacts WHERE number_problem IS NOT NULL;

-- name: texts_in_state
-- Texts waiting (`pending`) or overdue (`late`), without patient data.
SELECT id, clinic_id, booking_id, kind, status, due_at, valid_until, attempts, status_reason
FROM texts
WHERE status IN ('pending', 'sending')
  AND ($1 = 'pending' OR due_at < now() - make_interval(secs => $2))
ORDER BY due_at LIMIT $3;

-- name: sender_pauses
-- Senders whose sending is paused (an account or sender problem), without the sender's key.
SELECT code, meaning, since FROM sender_pauses ORDER BY since;
