-- The ops figures of the last hours, for the dashboard's charts (shared/ops_history.py): a
-- sample per period, taken by whichever instance of the service got there (the latest taken
-- in a period wins), so that every instance draws the same picture.
CREATE TABLE ops_samples (
    at                        timestamptz PRIMARY KEY,
    lag                       bigint,           -- NULL: the broker could not be read
    outbox_backlog            bigint NOT NULL,
    outbox_oldest_age_seconds float8 NOT NULL,
    dead_letters              bigint NOT NULL
);
