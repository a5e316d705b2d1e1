-- Plans: treatment plans, the sessions counted against them, durable timers.

-- Plan templates are data: versioned, global (clinic_id NULL) or a clinic's own override.
CREATE TABLE plan_templates (
    code        text NOT NULL,
    version     integer NOT NULL,
    clinic_id   uuid,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX plan_templates_key
    ON plan_templates (code, coalesce(clinic_id, '00000000-0000-0000-0000-000000000000'), version);

-- Per clinic: start a plan automatically when a dosing session is booked with none open.
CREATE TABLE clinic_settings (
    clinic_id          uuid PRIMARY KEY,
    auto_create_plans  boolean NOT NULL DEFAULT true
);

CREATE TABLE plans (
    id                  uuid PRIMARY KEY,
    clinic_id           uuid NOT NULL,
    patient_id          uuid NOT NULL,
    template            text NOT NULL,
    template_version    integer NOT NULL,
    definition          jsonb NOT NULL,
    modality            text NOT NULL,
    phase               text NOT NULL DEFAULT 'assessment'
                        CHECK (phase IN ('assessment', 'induction', 'maintenance', 'completed', 'discontinued')),
    sessions_target     integer NOT NULL,
    sessions_booked     integer NOT NULL DEFAULT 0,
    sessions_completed  integer NOT NULL DEFAULT 0,
    sessions_cancelled  integer NOT NULL DEFAULT 0,
    sessions_missed     integer NOT NULL DEFAULT 0,
    next_due_from       timestamptz,
    next_due_by         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plans_patient ON plans (clinic_id, patient_id, created_at);
-- at most one open plan per patient and modality
CREATE UNIQUE INDEX plans_one_open ON plans (patient_id, modality)
    WHERE phase NOT IN ('completed', 'discontinued');

-- Every session of a patient, as the latest booking event says (version decides), in its
-- plan; sessions before any plan (e.g. KAP preparation) wait with no plan and are adopted
-- when one starts.
CREATE TABLE plan_sessions (
    booking_id   uuid PRIMARY KEY,
    plan_id      uuid REFERENCES plans (id),
    clinic_id    uuid NOT NULL,
    patient_id   uuid NOT NULL,
    session_type text NOT NULL,
    is_dosing    boolean NOT NULL,
    starts_at    timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'booked'
                 CHECK (status IN ('booked', 'arrived', 'completed', 'cancelled', 'missed')),
    version      integer NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plan_sessions_plan ON plan_sessions (plan_id, starts_at);
CREATE INDEX plan_sessions_unplanned ON plan_sessions (patient_id, starts_at) WHERE plan_id IS NULL;

-- REMS Patient Monitoring Forms: one per completed esketamine session, due within 7 days.
CREATE TABLE rems_forms (
    booking_id  uuid PRIMARY KEY,
    plan_id     uuid NOT NULL REFERENCES plans (id),
    due_at      timestamptz NOT NULL,
    filed_at    timestamptz,
    filed_by    text
);

-- Durable timers: claimed with SKIP LOCKED, fired once, surviving restarts.
CREATE TABLE plan_timers (
    id         bigserial PRIMARY KEY,
    plan_id    uuid NOT NULL REFERENCES plans (id),
    kind       text NOT NULL CHECK (kind IN ('session_due', 'adherence_gap', 'rems_overdue')),
    ref        text NOT NULL DEFAULT '',
    due_at     timestamptz NOT NULL,
    fired_at   timestamptz,
    UNIQUE (plan_id, kind, ref)
);
CREATE INDEX plan_timers_due ON plan_timers (due_at) WHERE fired_at IS NULL;

CREATE TRIGGER plan_timers_notify AFTER INSERT OR UPDATE OF due_at ON plan_timers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_workers('timers');

-- A copy of the clinic networks' API keys (from booking's ApiKeyIssued events).
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    clinic_id   uuid NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    role        text NOT NULL,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Patients known from booking's PatientRegistered events (to check plan requests).
CREATE TABLE patients (
    id         uuid PRIMARY KEY,
    clinic_id  uuid NOT NULL
);
