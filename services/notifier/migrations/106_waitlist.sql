-- Waitlist slot offers sent to patients (from booking's WaitlistSlotOpened events).
CREATE TABLE waitlist_offers (
    offer_id      uuid NOT NULL,
    patient_id    uuid NOT NULL,
    clinic_id     uuid NOT NULL,
    clinic_name   text NOT NULL,
    clinic_phone  text NOT NULL,
    site_name     text NOT NULL,
    site_timezone text NOT NULL,
    starts_at     timestamptz NOT NULL,
    language      text NOT NULL DEFAULT 'en',
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'taken', 'accepted')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (offer_id, patient_id)
);

ALTER TABLE texts ADD COLUMN offer_id uuid;
