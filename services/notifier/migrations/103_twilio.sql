-- Delivery receipts, failing numbers and patients' replies.
ALTER TABLE texts
    ADD COLUMN delivery_status     text,
    ADD COLUMN delivery_error_code text,
    ADD COLUMN delivery_updated_at timestamptz;
CREATE INDEX texts_provider_sid ON texts (provider_sid) WHERE provider_sid IS NOT NULL;

-- Why a number cannot be texted (Twilio said so): staff see it, the dispatcher skips it.
ALTER TABLE contacts ADD COLUMN number_problem text;

-- Every text a patient (or a stranger) sent us, with what we made of it.
CREATE TABLE inbound_messages (
    id              bigserial PRIMARY KEY,
    message_sid     text NOT NULL UNIQUE,
    from_e164       text NOT NULL,
    body            text NOT NULL,
    patient_id      uuid,
    clinic_id       uuid,
    booking_id      uuid,
    interpretation  text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbound_patient ON inbound_messages (patient_id, received_at);
