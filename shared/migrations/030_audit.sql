-- The audit trail (shared/audit.py): who read or changed which patient's data, sign-ins, key
-- and role changes, policy and template changes, ops actions. One trail per service (its
-- schema); ids only, never names, phone numbers or message bodies.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    clinic_id       uuid,            -- the network whose data it is (NULL: none, e.g. ops)
    actor_clinic_id uuid,            -- the actor's network (another one: a refused cross-network attempt)
    actor_kind      text NOT NULL CHECK (actor_kind IN ('staff', 'key', 'ops', 'operator', 'system', 'anonymous')),
    staff_id        uuid,            -- the person, for actor_kind 'staff'
    actor_label     text,            -- the API key's label (never a person's name)
    role            text,
    action          text NOT NULL,   -- the route's name, e.g. get_patient, book_session, sign_in
    resource        text NOT NULL,   -- method and path, ids only, e.g. GET /patients/<uuid>
    patient_ids     uuid[] NOT NULL DEFAULT '{}',
    outcome         text NOT NULL CHECK (outcome IN ('allowed', 'refused', 'not_found', 'failed')),
    status          smallint,        -- the HTTP status answered
    client          text,            -- the client's address
    correlation_id  text
);
CREATE INDEX audit_log_clinic ON audit_log (clinic_id, at, id);
CREATE INDEX audit_log_system ON audit_log (at, id) WHERE actor_kind = 'system';
CREATE INDEX audit_log_staff ON audit_log (staff_id, at, id) WHERE staff_id IS NOT NULL;
CREATE INDEX audit_log_patients ON audit_log USING gin (patient_ids);

-- The hash chain, per day (UTC) of the entries: the sealer (shared/audit.py) appends one
-- link per entry, in the order entries became visible, hash = sha256(previous hash | entry).
CREATE TABLE audit_seals (
    entry_id   bigint PRIMARY KEY,
    day        date NOT NULL,
    seq        integer NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    sealed_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (day, seq)
);

-- Append-only for everyone, the table's owner and superusers included: UPDATE, DELETE and
-- TRUNCATE are refused, except the DELETE of audit_purge (which sets kcb.audit_purge).
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('kcb.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Retention: whole days before `cutoff`, never less than a year back. Runs as the tables'
-- owner (SECURITY DEFINER) so that the services' role needs no DELETE right.
CREATE FUNCTION audit_purge(cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    before_day date := (cutoff AT TIME ZONE 'UTC')::date;
    gone bigint;
BEGIN
    IF cutoff > now() - interval '365 days' THEN
        RAISE EXCEPTION 'the audit trail is kept at least a year' USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('kcb.audit_purge', 'on', true);
    DELETE FROM audit_seals WHERE day < before_day;
    DELETE FROM audit_log WHERE at < before_day::timestamp AT TIME ZONE 'UTC';
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM set_config('kcb.audit_purge', 'off', true);
    RETURN gone;
END $$;

-- Grants: a superuser makes the role kcb_audit own the trail and lets the services' role
-- kcb_service (their login roles are its members) read and append only. Run at migration
-- when the migrating role is a superuser (the embedded default, tests); otherwise a DBA runs
-- `SELECT <schema>.audit_protect()` once as a superuser (README, Audit).
CREATE FUNCTION audit_protect() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        CREATE ROLE kcb_audit NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE kcb_service NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO kcb_audit', current_schema());
    ALTER TABLE audit_log OWNER TO kcb_audit;
    ALTER TABLE audit_seals OWNER TO kcb_audit;
    ALTER FUNCTION audit_purge(timestamptz) OWNER TO kcb_audit;
    REVOKE ALL ON audit_log, audit_seals FROM PUBLIC;
    REVOKE ALL ON FUNCTION audit_purge(timestamptz) FROM PUBLIC;
    GRANT SELECT, INSERT ON audit_log, audit_seals TO kcb_service;
    GRANT USAGE ON SEQUENCE audit_log_id_seq TO kcb_service;
    GRANT EXECUTE ON FUNCTION audit_purge(timestamptz) TO kcb_service;
END $$;

DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        PERFORM audit_protect();
    END IF;
END $$;
