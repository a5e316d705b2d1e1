-- What ops did with each dead letter: replayed to its source topic once the cause was
-- fixed, or discarded with a reason. Every action is recorded with who and when.
ALTER TABLE dead_letters
    ADD COLUMN status      text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'replayed', 'discarded')),
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN resolved_by text;
CREATE INDEX dead_letters_pending ON dead_letters (id) WHERE status = 'pending';

CREATE TABLE dead_letter_actions (
    id             bigserial PRIMARY KEY,
    dead_letter_id bigint      NOT NULL REFERENCES dead_letters (id),
    action         text        NOT NULL CHECK (action IN ('replayed', 'discarded')),
    actor          text        NOT NULL,
    reason         text,
    at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_actions_letter ON dead_letter_actions (dead_letter_id);
