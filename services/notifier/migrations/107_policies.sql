-- A clinic network's texting policy (defaults when it has none: TCPA quiet hours 21:00-08:00;
-- FCC healthcare exemption caps of 1 a day and 3 a week, which appointment-critical texts may
-- pass; every kind of text on).
CREATE TABLE clinic_policies (
    clinic_id          uuid PRIMARY KEY,
    quiet_hours_start  smallint NOT NULL DEFAULT 21 CHECK (quiet_hours_start BETWEEN 1 AND 24),
    quiet_hours_end    smallint NOT NULL DEFAULT 8 CHECK (quiet_hours_end BETWEEN 0 AND 23),
    daily_cap          smallint NOT NULL DEFAULT 1 CHECK (daily_cap > 0),
    weekly_cap         smallint NOT NULL DEFAULT 3 CHECK (weekly_cap > 0),
    critical_past_caps boolean NOT NULL DEFAULT true,
    disabled_kinds     text[] NOT NULL DEFAULT '{}',
    updated_at         timestamptz NOT NULL DEFAULT now()
);
