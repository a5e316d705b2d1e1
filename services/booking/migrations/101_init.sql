-- Booking: a clinic network's sites, rooms, providers, patients, session types and bookings.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- The tenant: every other row belongs to exactly one clinic network.
CREATE TABLE clinics (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    phone       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes; the key itself is shown once, when issued.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    key_hash    text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'scheduler', 'clinician', 'ops', 'read-only')),
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE sites (
    id               uuid PRIMARY KEY,
    clinic_id        uuid NOT NULL REFERENCES clinics (id),
    name             text NOT NULL,
    address          text NOT NULL,
    phone            text NOT NULL,
    timezone         text NOT NULL,
    default_language text NOT NULL DEFAULT 'en' CHECK (default_language IN ('en', 'fr', 'es')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_clinic ON sites (clinic_id, created_at, id);

-- Opening hours in the site's local time; weekday 1 = Monday ... 7 = Sunday (ISO).
CREATE TABLE site_hours (
    site_id  uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    weekday  smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    opens    time NOT NULL,
    closes   time NOT NULL,
    CHECK (closes > opens),
    PRIMARY KEY (site_id, weekday, opens)
);

-- Whole local days a site is closed (holidays etc.).
CREATE TABLE site_closures (
    id        uuid PRIMARY KEY,
    site_id   uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    first_day date NOT NULL,
    last_day  date NOT NULL,
    reason    text,
    CHECK (last_day >= first_day)
);
CREATE INDEX site_closures_site ON site_closures (site_id, first_day);

-- A room or chair: one patient at a time.
CREATE TABLE rooms (
    id          uuid PRIMARY KEY,
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    site_id     uuid NOT NULL REFERENCES sites (id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rooms_site ON rooms (site_id);

CREATE TABLE providers (
    id          uuid PRIMARY KEY,
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX providers_clinic ON providers (clinic_id, created_at, id);

-- When a provider works at a site (site local time).
CREATE TABLE provider_hours (
    provider_id uuid NOT NULL REFERENCES providers (id) ON DELETE CASCADE,
    site_id     uuid NOT NULL REFERENCES sites (id),
    weekday     smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    starts      time NOT NULL,
    ends        time NOT NULL,
    CHECK (ends > starts),
    PRIMARY KEY (provider_id, site_id, weekday, starts)
);
CREATE INDEX provider_hours_site ON provider_hours (site_id, weekday);

CREATE TABLE patients (
    id                      uuid PRIMARY KEY,
    clinic_id               uuid NOT NULL REFERENCES clinics (id),
    given_name              text NOT NULL,
    family_name             text NOT NULL,
    phone_e164              text NOT NULL,
    language                text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr', 'es')),
    sms_consent             boolean NOT NULL DEFAULT false,
    sms_consent_at          timestamptz,
    sms_consent_source      text,
    ride_contact_name       text,
    ride_contact_phone      text,
    ride_contact_consent    boolean NOT NULL DEFAULT false,
    ride_contact_consent_at timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patients_clinic ON patients (clinic_id, created_at, id);

-- Defaults every clinic starts from ...
CREATE TABLE session_types (
    code              text PRIMARY KEY,
    duration_minutes  integer NOT NULL CHECK (duration_minutes > 0),
    recovery_minutes  integer NOT NULL DEFAULT 0 CHECK (recovery_minutes >= 0),
    is_dosing         boolean NOT NULL,
    fasting_rule      text
);
INSERT INTO session_types (code, duration_minutes, recovery_minutes, is_dosing, fasting_rule) VALUES
    ('assessment',        60,   0, false, NULL),
    ('preparation',       60,   0, false, NULL),
    ('integration',       60,   0, false, NULL),
    ('iv_infusion',       45,  45, true,  'solids_6h_clear_liquids_2h'),
    ('im_injection',      30,  30, true,  'solids_6h_clear_liquids_2h'),
    ('esketamine_nasal',  30, 120, true,  'food_2h_liquids_30m'),
    ('oral_lozenge_kap', 180,   0, true,  'solids_6h_clear_liquids_2h');

-- ... and what a clinic changes of them.
CREATE TABLE session_type_overrides (
    clinic_id         uuid NOT NULL REFERENCES clinics (id),
    code              text NOT NULL REFERENCES session_types (code),
    duration_minutes  integer CHECK (duration_minutes > 0),
    recovery_minutes  integer CHECK (recovery_minutes >= 0),
    fasting_rule      text,
    PRIMARY KEY (clinic_id, code)
);

-- Appointment status names follow FHIR R4 (arrived = checked in, fulfilled = completed).
-- A booking holds its room, provider and patient from starts_at to occupied_until (the end
-- of recovery/monitoring); the exclusion constraints make double-booking impossible, even
-- under concurrency.
CREATE TABLE bookings (
    id                      uuid PRIMARY KEY,
    clinic_id               uuid NOT NULL REFERENCES clinics (id),
    site_id                 uuid NOT NULL REFERENCES sites (id),
    room_id                 uuid NOT NULL REFERENCES rooms (id),
    provider_id             uuid NOT NULL REFERENCES providers (id),
    patient_id              uuid NOT NULL REFERENCES patients (id),
    series_id               uuid,
    session_type            text NOT NULL REFERENCES session_types (code),
    is_dosing               boolean NOT NULL,
    starts_at               timestamptz NOT NULL,
    ends_at                 timestamptz NOT NULL,
    occupied_until          timestamptz NOT NULL,
    status                  text NOT NULL DEFAULT 'booked'
                            CHECK (status IN ('booked', 'arrived', 'fulfilled', 'cancelled', 'noshow')),
    version                 integer NOT NULL DEFAULT 1,
    confirmed_at            timestamptz,
    ride_status             text NOT NULL DEFAULT 'unknown'
                            CHECK (ride_status IN ('unknown', 'requested', 'confirmed')),
    ride_driver_name        text,
    reschedule_requested_at timestamptz,
    cancel_reason           text,
    cancelled_by            text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at AND occupied_until >= ends_at),
    CONSTRAINT bookings_room_free EXCLUDE USING gist
        (room_id WITH =, tstzrange(starts_at, occupied_until) WITH &&)
        WHERE (status IN ('booked', 'arrived')),
    CONSTRAINT bookings_provider_free EXCLUDE USING gist
        (provider_id WITH =, tstzrange(starts_at, occupied_until) WITH &&)
        WHERE (status IN ('booked', 'arrived')),
    CONSTRAINT bookings_patient_free EXCLUDE USING gist
        (patient_id WITH =, tstzrange(starts_at, occupied_until) WITH &&)
        WHERE (status IN ('booked', 'arrived'))
);
CREATE INDEX bookings_patient ON bookings (patient_id, starts_at, id);
CREATE INDEX bookings_site ON bookings (site_id, starts_at);
CREATE INDEX bookings_clinic ON bookings (clinic_id, starts_at, id);
CREATE INDEX bookings_series ON bookings (series_id) WHERE series_id IS NOT NULL;

-- A patient waiting for a slot at a site, for a session type, within a window.
CREATE TABLE waitlist_entries (
    id            uuid PRIMARY KEY,
    clinic_id     uuid NOT NULL REFERENCES clinics (id),
    patient_id    uuid NOT NULL REFERENCES patients (id),
    site_id       uuid NOT NULL REFERENCES sites (id),
    session_type  text NOT NULL REFERENCES session_types (code),
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'booked', 'withdrawn')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start)
);
CREATE INDEX waitlist_waiting ON waitlist_entries (site_id, session_type, window_start)
    WHERE status = 'waiting';

-- A freed slot offered to the waiting patients: the first who accepts gets it.
CREATE TABLE waitlist_offers (
    id            uuid PRIMARY KEY,
    clinic_id     uuid NOT NULL REFERENCES clinics (id),
    site_id       uuid NOT NULL REFERENCES sites (id),
    room_id       uuid NOT NULL REFERENCES rooms (id),
    provider_id   uuid NOT NULL REFERENCES providers (id),
    session_type  text NOT NULL,
    starts_at     timestamptz NOT NULL,
    freed_by      uuid NOT NULL REFERENCES bookings (id),
    candidates    uuid[] NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'taken', 'expired')),
    taken_by      uuid REFERENCES patients (id),
    booking_id    uuid REFERENCES bookings (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key: the first response to a key is stored with the request's effect.
CREATE TABLE idempotency_keys (
    clinic_id     uuid NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, key)
);
