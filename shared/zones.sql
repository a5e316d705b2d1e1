-- Named queries of shared/zones.py.

-- name: utc_offsets
-- Each zone's UTC offset (seconds) at each instant, as PostgreSQL's own time zone rules
-- give it; zones PostgreSQL does not know are left out.
WITH known AS (SELECT z FROM unnest($1::text[]) z WHERE z IN (SELECT name FROM pg_timezone_names))
SELECT z AS zone, at,
       extract(epoch FROM (at AT TIME ZONE z) - (at AT TIME ZONE 'UTC'))::int AS offset_seconds
FROM known, unnest($2::timestamptz[]) at;
