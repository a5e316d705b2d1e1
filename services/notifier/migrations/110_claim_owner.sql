-- Who holds a claim (the PostgreSQL backend pid of its dispatcher's listening connection:
-- gone when the dispatcher dies) and when the text was handed to the provider call, so
-- that a dead dispatcher's claims are released at once, not after the stale-claim time.
ALTER TABLE texts ADD COLUMN claimed_by integer, ADD COLUMN handed_at timestamptz;
CREATE INDEX texts_sending ON texts (claimed_at) WHERE status = 'sending';
