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
