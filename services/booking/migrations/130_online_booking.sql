-- Online consultation booking (services/booking/online.py): the public's first contact.

-- A clinic network's public address: /book/<slug>. Existing networks get one from their name
-- (lowercase ASCII words joined by hyphens; a second network of the same name gets its id's
-- first characters after it).
ALTER TABLE clinics ADD COLUMN IF NOT EXISTS slug text;
WITH named AS (
    SELECT id, coalesce(nullif(trim(BOTH '-' FROM regexp_replace(lower(name), '[^a-z0-9]+', '-', 'g')), ''),
                        'clinic') AS base,
           row_number() OVER (PARTITION BY regexp_replace(lower(name), '[^a-z0-9]+', '-', 'g')
                              ORDER BY created_at, id) AS nth
    FROM clinics WHERE slug IS NULL
)
UPDATE clinics c SET slug = left(n.base, 40) || CASE WHEN n.nth > 1 THEN '-' || left(c.id::text, 8) ELSE '' END
FROM named n WHERE n.id = c.id;
CREATE UNIQUE INDEX IF NOT EXISTS clinics_slug ON clinics (slug);

-- Whether a provider takes consultations (phone or video, from any of their sites' hours).
ALTER TABLE providers ADD COLUMN IF NOT EXISTS consultations boolean NOT NULL DEFAULT true;

-- A 15-minute consultation, by phone or video (no room), unless a network changes its length.
INSERT INTO session_types (code, duration_minutes, recovery_minutes, is_dosing, fasting_rule)
VALUES ('consultation', 15, 0, false, NULL)
ON CONFLICT (code) DO NOTHING;

-- How a session takes place (the same column issue 17's "phone and video visits" adds: either
-- migration may come first). A remote session holds a provider, never a room.
ALTER TABLE bookings ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'clinic';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'bookings_mode_check'
                   AND conrelid = 'bookings'::regclass) THEN
        ALTER TABLE bookings ADD CONSTRAINT bookings_mode_check
            CHECK (mode IN ('clinic', 'phone', 'video', 'home'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'bookings_room_when_in_clinic'
                   AND conrelid = 'bookings'::regclass) THEN
        ALTER TABLE bookings ADD CONSTRAINT bookings_room_when_in_clinic
            CHECK (mode <> 'clinic' OR room_id IS NOT NULL);
    END IF;
END $$;
ALTER TABLE bookings ALTER COLUMN room_id DROP NOT NULL;

-- Where a booking came from: staff (the API, the console) or the public page; an online
-- booking is a new lead until staff mark it seen.
ALTER TABLE bookings ADD COLUMN source text NOT NULL DEFAULT 'staff'
    CHECK (source IN ('staff', 'online'));
ALTER TABLE bookings ADD COLUMN lead_seen_at timestamptz;
CREATE INDEX bookings_new_leads ON bookings (clinic_id, starts_at)
    WHERE source = 'online' AND lead_seen_at IS NULL;

-- A visitor's request: the slot they chose, who they are, their consent to texts (TCPA
-- prior express consent: the wording's version, when, from which address and browser) and
-- the code texted to their number (its HMAC only; 10 minutes, 5 tries). Kept once booked:
-- it is the record of the consent.
CREATE TABLE online_requests (
    id                  uuid PRIMARY KEY,
    clinic_id           uuid NOT NULL REFERENCES clinics (id),
    site_id             uuid NOT NULL REFERENCES sites (id),
    provider_id         uuid NOT NULL REFERENCES providers (id),
    starts_at           timestamptz NOT NULL,
    mode                text NOT NULL CHECK (mode IN ('phone', 'video')),
    given_name          text NOT NULL,
    family_name         text NOT NULL,
    phone_e164          text NOT NULL,
    language            text NOT NULL CHECK (language IN ('en', 'fr', 'es')),
    timezone            text NOT NULL,
    consent_version     text NOT NULL,
    consent_at          timestamptz NOT NULL,
    consent_address     text NOT NULL,
    consent_user_agent  text NOT NULL,
    code_hash           text NOT NULL,
    tries               integer NOT NULL DEFAULT 0,
    expires_at          timestamptz NOT NULL,
    verified_at         timestamptz,
    booking_id          uuid REFERENCES bookings (id),
    patient_id          uuid REFERENCES patients (id),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX online_requests_phone ON online_requests (phone_e164, created_at);
CREATE INDEX online_requests_address ON online_requests (consent_address, created_at);
CREATE INDEX online_requests_clinic ON online_requests (clinic_id, created_at);
