-- Wake the outbox relay only while it waits for rows, not once per inserting statement: a
-- NOTIFY takes a database-wide lock from the writer's commit until after it (the commits of
-- every writer then go one at a time, WAL flush included) and signals the listening session,
-- which woke the relay once per booking under load when it was busy publishing anyway.
--
-- The relay (shared/outbox.py) holds the session advisory lock '<schema>.outbox_waiting'
-- while it waits. A writer that can take that lock shared (no relay waiting) keeps it until
-- its transaction ends, and does not notify: a relay can start to wait only once every such
-- writer has committed or rolled back, and it looks for rows once more before it does. A
-- writer that cannot take it (a relay waits) notifies, as before.
CREATE FUNCTION outbox_wake_waiting_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(hashtext(TG_TABLE_SCHEMA || '.outbox_waiting')) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_wake_waiting_relay();
