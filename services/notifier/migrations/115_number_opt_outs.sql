-- An opt-out belongs to a phone number, not to a patient row: while a number's row stands,
-- nothing goes to it from this sender (every patient with that number, every ride contact,
-- every clinic network). A START word from the number removes it.
CREATE TABLE number_opt_outs (
    phone_e164    text PRIMARY KEY,
    opted_out_at  timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL,   -- 'keyword', 'phrase' (natural language), 'twilio', 'staff'
    inbound_id    bigint           -- the message that opted it out, if one did
);
-- The opt-outs recorded per patient row until now become their numbers'.
INSERT INTO number_opt_outs (phone_e164, opted_out_at, source)
SELECT phone_e164, min(updated_at), 'keyword' FROM contacts WHERE opted_out GROUP BY phone_e164
ON CONFLICT DO NOTHING;
ALTER TABLE contacts DROP COLUMN opted_out;

-- Ride contacts are found by their number (a STOP from a driver's phone stops pickup texts).
CREATE INDEX appointments_ride_contact ON appointments (ride_contact_phone)
    WHERE ride_contact_phone IS NOT NULL;

-- What an inbound text was beside its meaning: why it was not acted on, if it was not.
ALTER TABLE inbound_messages ADD COLUMN note text;

-- Each inbound text as each clinic network that has the number sees it (one row per
-- network: a number shared by patients of two networks is shown to both, as unmatched).
-- `patient_ids`: that network's patients with this number; `ride_contact_of`: its patients
-- whose ride contact has it. `acted_on`: the text changed something (a reply 1-4 matched to
-- one patient, an opt-out, an opt-in); the others are for staff to read.
CREATE TABLE staff_inbox (
    id              bigserial PRIMARY KEY,
    inbound_id      bigint NOT NULL REFERENCES inbound_messages (id),
    clinic_id       uuid NOT NULL,
    patient_ids     uuid[] NOT NULL DEFAULT '{}',
    ride_contact_of uuid[] NOT NULL DEFAULT '{}',
    acted_on        boolean NOT NULL,
    read_at         timestamptz,
    read_by         text,
    UNIQUE (inbound_id, clinic_id)
);
CREATE INDEX staff_inbox_of_clinic ON staff_inbox (clinic_id, id);
-- Replies kept for staff until now (matched to one patient) stay in their network's inbox.
INSERT INTO staff_inbox (inbound_id, clinic_id, patient_ids, acted_on)
SELECT id, clinic_id, ARRAY[patient_id],
       interpretation IN ('confirm', 'reschedule', 'ride', 'take_slot', 'opt_out', 'opt_in')
FROM inbound_messages WHERE clinic_id IS NOT NULL AND patient_id IS NOT NULL;
