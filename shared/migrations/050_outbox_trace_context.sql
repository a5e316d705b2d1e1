-- The W3C traceparent of the work that wrote an outbox row (NULL while tracing is off): the
-- relay publishes the row in that trace, with a `traceparent` header (shared/tracing.py).
ALTER TABLE outbox ADD COLUMN trace_context text;
