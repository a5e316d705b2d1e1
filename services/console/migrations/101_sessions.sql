-- The console keeps no clinical state: only who is signed in, in which browser. The cookie
-- holds a random value; only its SHA-256 is stored here.
CREATE TABLE sessions (
    id_hash          text PRIMARY KEY,
    csrf_token       text NOT NULL,
    staff_id         uuid NOT NULL,
    clinic_id        uuid NOT NULL,
    session_id       uuid NOT NULL,        -- booking's session (its tokens)
    name             text NOT NULL,
    role             text NOT NULL,
    language         text NOT NULL,
    token            text NOT NULL,        -- the person's current sign-in token
    token_expires_at timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
