-- Booking: the clinic network's sites, patients, session types and bookings.
CREATE TABLE clinics (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    phone       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
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
CREATE INDEX sites_clinic ON sites (clinic_id);

CREATE TABLE patients (
    id                 uuid PRIMARY KEY,
    clinic_id          uuid NOT NULL REFERENCES clinics (id),
    given_name         text NOT NULL,
    family_name        text NOT NULL,
    phone_e164         text NOT NULL,
    language           text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr', 'es')),
    sms_consent        boolean NOT NULL DEFAULT false,
    sms_consent_at     timestamptz,
    sms_consent_source text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patients_clinic ON patients (clinic_id);

-- Defaults a clinic may later override per network.
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

-- Appointment status names follow FHIR R4.
CREATE TABLE bookings (
    id            uuid PRIMARY KEY,
    clinic_id     uuid NOT NULL REFERENCES clinics (id),
    site_id       uuid NOT NULL REFERENCES sites (id),
    patient_id    uuid NOT NULL REFERENCES patients (id),
    session_type  text NOT NULL REFERENCES session_types (code),
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'booked'
                  CHECK (status IN ('booked', 'arrived', 'fulfilled', 'cancelled', 'noshow')),
    version       integer NOT NULL DEFAULT 1,
    series_id     uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX bookings_patient ON bookings (patient_id, starts_at);
CREATE INDEX bookings_site ON bookings (site_id, starts_at);
