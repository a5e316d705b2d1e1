-- Plans: treatment plans and the sessions counted against them.
CREATE TABLE plans (
    id              uuid PRIMARY KEY,
    clinic_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    template        text NOT NULL,
    modality        text NOT NULL,
    phase           text NOT NULL DEFAULT 'induction'
                    CHECK (phase IN ('assessment', 'induction', 'maintenance', 'completed', 'discontinued')),
    sessions_target integer NOT NULL CHECK (sessions_target > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plans_patient ON plans (patient_id);
-- at most one open plan per patient and modality
CREATE UNIQUE INDEX plans_one_open ON plans (patient_id, modality)
    WHERE phase NOT IN ('completed', 'discontinued');

CREATE TABLE plan_sessions (
    booking_id   uuid PRIMARY KEY,
    plan_id      uuid NOT NULL REFERENCES plans (id),
    session_type text NOT NULL,
    is_dosing    boolean NOT NULL,
    starts_at    timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'booked'
                 CHECK (status IN ('booked', 'completed', 'cancelled', 'missed')),
    version      integer NOT NULL DEFAULT 1,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plan_sessions_plan ON plan_sessions (plan_id, starts_at);
