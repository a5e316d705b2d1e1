-- Notifier: who to text, about which appointments, and every text with its state.
CREATE TABLE contacts (
    patient_id      uuid PRIMARY KEY,
    clinic_id       uuid NOT NULL,
    phone_e164      text NOT NULL,
    language        text NOT NULL DEFAULT 'en',
    sms_consent     boolean NOT NULL DEFAULT false,
    opted_out       boolean NOT NULL DEFAULT false,
    stop_notice_sent boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_phone ON contacts (phone_e164);

-- The notifier's own copy of what it needs about each booking (from booking events).
CREATE TABLE appointments (
    booking_id    uuid PRIMARY KEY,
    clinic_id     uuid NOT NULL,
    patient_id    uuid NOT NULL,
    version       integer NOT NULL,
    status        text NOT NULL DEFAULT 'booked',
    clinic_name   text NOT NULL,
    clinic_phone  text NOT NULL,
    site_name     text NOT NULL,
    site_address  text NOT NULL,
    site_phone    text NOT NULL,
    site_timezone text NOT NULL,
    session_type  text NOT NULL,
    is_dosing     boolean NOT NULL,
    fasting_rule  text,
    language      text NOT NULL DEFAULT 'en',
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX appointments_patient ON appointments (patient_id);

-- Every text: scheduled (pending) -> sending -> sent | failed, or cancelled/skipped.
CREATE TABLE texts (
    id              bigserial PRIMARY KEY,
    clinic_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    booking_id      uuid,
    booking_version integer,
    kind            text NOT NULL,
    due_at          timestamptz NOT NULL,
    valid_until     timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'skipped')),
    status_reason   text,
    attempts        integer NOT NULL DEFAULT 0,
    claimed_at      timestamptz,
    sent_at         timestamptz,
    provider_sid    text,
    body            text,
    segments        integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX texts_due ON texts (due_at) WHERE status = 'pending';
CREATE INDEX texts_patient ON texts (patient_id, created_at);
CREATE INDEX texts_booking ON texts (booking_id) WHERE booking_id IS NOT NULL;

-- What the local recording sender "sent" (used when no Twilio credentials are configured).
CREATE TABLE recorded_sms (
    id          bigserial PRIMARY KEY,
    text_id     bigint NOT NULL UNIQUE,
    to_e164     text NOT NULL,
    body        text NOT NULL,
    sid         text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Latest plan progress per plan (from plan events).
CREATE TABLE plan_progress (
    plan_id            uuid PRIMARY KEY,
    patient_id         uuid NOT NULL,
    template           text NOT NULL,
    sessions_target    integer NOT NULL,
    sessions_booked    integer NOT NULL,
    sessions_completed integer NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Wake the dispatchers when texts are scheduled.
CREATE TRIGGER texts_notify AFTER INSERT ON texts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_workers('texts');
