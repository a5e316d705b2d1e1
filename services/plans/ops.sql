-- name: timer_queue
-- Durable timers not fired yet, by kind: how many, how many overdue by more than $1 seconds.
SELECT kind, count(*) AS pending,
       count(*) FILTER (WHERE due_at < now() - make_interval(secs => $1)) AS overdue
FROM plan_timers WHERE fired_at IS NULL GROUP BY kind ORDER BY kind;
