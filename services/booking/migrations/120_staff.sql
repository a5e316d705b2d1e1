-- People who work for a clinic network and sign in (services/booking/staff.py). Roles are the
-- API keys' roles. A sign-in email belongs to one person across all networks.
CREATE TABLE staff (
    id                   uuid PRIMARY KEY,
    clinic_id            uuid NOT NULL REFERENCES clinics (id),
    email                text NOT NULL,
    name                 text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('admin', 'scheduler', 'clinician', 'ops', 'read-only')),
    language             text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'fr')),
    password_hash        text,               -- argon2id; NULL until the person enrolled
    totp_secret          text,               -- base32; NULL: no second factor (never for admins)
    totp_last_step       bigint,             -- the last 30 s step used (a code works once)
    enrolment_hash       text,               -- SHA-256 of the one-time enrolment code
    enrolment_expires_at timestamptz,
    pending_totp_secret  text,               -- offered during enrolment, kept once confirmed
    disabled_at          timestamptz,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX staff_email ON staff (lower(email));
CREATE UNIQUE INDEX staff_enrolment ON staff (enrolment_hash) WHERE enrolment_hash IS NOT NULL;
CREATE INDEX staff_clinic ON staff (clinic_id, created_at, id);

-- Each network's Ed25519 private key for staff tokens (its public key is in token_keys).
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    clinic_id    uuid NOT NULL UNIQUE REFERENCES clinics (id),
    private_key  bytea NOT NULL,         -- PKCS#8 PEM
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A signed-in session: its tokens are refreshed while it lasts (at most until expires_at).
CREATE TABLE staff_sessions (
    id          uuid PRIMARY KEY,
    staff_id    uuid NOT NULL REFERENCES staff (id),
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
CREATE INDEX staff_sessions_open ON staff_sessions (staff_id) WHERE ended_at IS NULL;

-- Failed sign-ins, per account ('account:<email>') and per address ('address:<ip>'), for
-- the rate limit.
CREATE TABLE sign_in_failures (
    subject    text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_subject ON sign_in_failures (subject, failed_at);
