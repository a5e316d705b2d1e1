-- Delivery receipts that arrived before the dispatcher stored their message's SID (Twilio
-- answers the send, then calls back, sometimes before the SID is committed): kept here and
-- applied by the dispatcher once the SID is stored.
CREATE TABLE early_receipts (
    provider_sid text NOT NULL,
    status       text NOT NULL,
    error_code   text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider_sid, status)
);
