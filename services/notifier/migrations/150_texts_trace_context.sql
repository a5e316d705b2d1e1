-- The W3C traceparent of the event that scheduled a text (NULL while tracing is off): the
-- dispatcher's provider call and the delivery receipts join that trace (shared/tracing.py).
ALTER TABLE texts ADD COLUMN trace_context text;
