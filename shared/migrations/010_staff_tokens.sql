-- Staff sign-in tokens (shared/tokens.py): every service keeps the public keys that verify
-- them and the sessions that ended (signed out, or the person's account changed). Booking,
-- which signs the tokens, writes these rows itself; plans and notifier copy them from
-- booking's StaffTokenKeyIssued and StaffSessionEnded events.
CREATE TABLE token_keys (
    kid         text PRIMARY KEY,
    clinic_id   uuid NOT NULL,
    public_key  text NOT NULL,          -- Ed25519, PEM (SubjectPublicKeyInfo)
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ended_sessions (
    session_id  uuid PRIMARY KEY,
    clinic_id   uuid NOT NULL,
    expires_at  timestamptz NOT NULL,   -- no token of the session is valid after this anyway
    ended_at    timestamptz NOT NULL DEFAULT now()
);
