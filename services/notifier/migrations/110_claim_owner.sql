-- Who holds a claim (the PostgreSQL backend pid of its dispatcher's listening connection:
-- gone when the dispatcher dies) and when the text was handed to the provider call, so
-- that a dead dispatcher's claims are released at once, not after the stale-claim time.
ALTER TABLE texts ADD COLUMN claimed_by integer, ADD COLUMN handed_at timestamptz;
-- Open claims, for the release: the predicate names provider_sid so that the statements
-- updating claimed texts by id (which test only the status) look them up by primary key,
-- never by scanning this index and its entries of texts claimed since the last vacuum.
CREATE INDEX texts_open_claims ON texts (claimed_at) WHERE status = 'sending' AND provider_sid IS NULL;
