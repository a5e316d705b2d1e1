-- Claims owned by a lease instead of a backend pid (a pid means nothing behind PgBouncer in
-- transaction mode, where a connection's statements run on whichever server session is
-- free). Each running dispatcher holds a row here and renews it; its claims carry the row's
-- id in `claimed_by`. A lease that is not renewed before `expires_at` has lapsed: its row
-- goes, and its claims go back (release_stale_claims).
CREATE TABLE dispatcher_leases (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
-- Open claims made under backend pids before this: owned by no lease (ids start at 1), so
-- they go back once their callback grace has passed.
UPDATE texts SET claimed_by = 0
WHERE status = 'sending' AND provider_sid IS NULL AND claimed_by IS NOT NULL;
