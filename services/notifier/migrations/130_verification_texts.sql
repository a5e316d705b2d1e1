-- Verification codes texted to visitors of the public booking page (services/notifier/codes.py):
-- one row per request, so a redelivered event never texts twice. Neither the number nor the
-- code is kept here (booking keeps the request; the code lives only in the text).
CREATE TABLE verification_texts (
    id          bigserial PRIMARY KEY,
    request_id  uuid NOT NULL UNIQUE,
    clinic_id   uuid NOT NULL,
    status      text NOT NULL DEFAULT 'sending'
                CHECK (status IN ('sending', 'sent', 'failed', 'skipped')),
    reason      text,
    sid         text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verification_texts_created ON verification_texts (created_at);
