-- Retention deletes processed events by age (shared/retention.sql): a BRIN index finds the
-- old ones (rows are written in time order) at almost no cost to the consumers' inserts.
CREATE INDEX processed_events_age ON processed_events USING brin (processed_at);
