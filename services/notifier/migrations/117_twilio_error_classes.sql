-- Sending paused for a sender after an account or sender problem Twilio named (bad
-- credentials, suspended account, a from number not ours...): every instance sees it and
-- holds its texts (one is sent now and then as a probe); a text that gets through clears
-- it, and so does a start-up (a restart with the right settings fixes it).
CREATE TABLE sender_pauses (
    sender    text PRIMARY KEY,
    code      text NOT NULL,
    meaning   text NOT NULL,
    since     timestamptz NOT NULL DEFAULT now(),
    probed_at timestamptz NOT NULL DEFAULT now()
);

-- Numbers whose last texts did not reach the handset (Twilio 30003), how many times in a
-- row: at NOTIFIER_UNREACHABLE_MARKS_AFTER the number is marked; a delivered text clears it.
CREATE TABLE unreachable_numbers (
    phone_e164 text PRIMARY KEY,
    times      integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A text whose receipt said undelivered for a passing reason is sent again: the SIDs that
-- failed, so that a late receipt of theirs is never taken for the new one.
ALTER TABLE texts ADD COLUMN failed_sids text[];
