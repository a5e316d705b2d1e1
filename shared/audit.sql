-- The audit trail (shared/audit.py, shared/audit_chain.py, shared/audit_api.py); the tables
-- are shared/migrations/030_audit.sql.

-- name: insert_entry
INSERT INTO audit_log (at, clinic_id, actor_clinic_id, actor_kind, staff_id, actor_label, role,
                       action, resource, patient_ids, outcome, status, client, correlation_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14);

-- name: entries_page
-- A network's entries (and the service's own, e.g. the retention purge), newest first.
SELECT id, at, clinic_id, actor_clinic_id, actor_kind, staff_id, actor_label, role, action,
       resource, patient_ids, outcome, status, client, correlation_id
FROM audit_log
WHERE (clinic_id = $1 OR actor_kind = 'system')
  AND ($2::uuid IS NULL OR patient_ids @> ARRAY[$2::uuid])
  AND ($3::uuid IS NULL OR staff_id = $3)
  AND ($4::text IS NULL OR actor_label = $4)
  AND ($5::text IS NULL OR action = $5)
  AND ($6::timestamptz IS NULL OR at >= $6)
  AND ($7::timestamptz IS NULL OR at < $7)
  AND (at, id) < ($8, $9)
ORDER BY at DESC, id DESC
LIMIT $10;

-- name: entries_of_period
-- A network's entries of a period (and the service's own), oldest first (the export).
SELECT id, at, clinic_id, actor_clinic_id, actor_kind, staff_id, actor_label, role, action,
       resource, patient_ids, outcome, status, client, correlation_id
FROM audit_log
WHERE (clinic_id = $1 OR actor_kind = 'system') AND at >= $2 AND at < $3
ORDER BY at, id;

-- name: lock_sealer
-- One sealer at a time per schema (the lock ends with the transaction).
SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.audit_seals'));

-- name: last_sealed
SELECT coalesce(max(entry_id), 0) FROM audit_seals;

-- name: entries_to_seal
-- Entries without a link, from a window below the last sealed id (an entry whose
-- transaction committed after later ones is sealed when it becomes visible).
SELECT a.id, a.at, a.clinic_id, a.actor_clinic_id, a.actor_kind, a.staff_id, a.actor_label,
       a.role, a.action, a.resource, a.patient_ids, a.outcome, a.status, a.client,
       a.correlation_id
FROM audit_log a
WHERE a.id > $1 AND NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.entry_id = a.id)
ORDER BY a.id
LIMIT $2;

-- name: chain_heads
SELECT DISTINCT ON (day) day, seq, hash FROM audit_seals WHERE day = ANY($1::date[])
ORDER BY day, seq DESC;

-- name: insert_seals
INSERT INTO audit_seals (entry_id, day, seq, prev_hash, hash)
SELECT * FROM unnest($1::bigint[], $2::date[], $3::int[], $4::text[], $5::text[]);

-- name: sealed_days
SELECT DISTINCT day FROM audit_seals WHERE day >= $1 ORDER BY day;

-- name: chain_of_day
SELECT s.seq, s.entry_id, s.prev_hash, s.hash, a.id, a.at, a.clinic_id, a.actor_clinic_id,
       a.actor_kind, a.staff_id, a.actor_label, a.role, a.action, a.resource, a.patient_ids,
       a.outcome, a.status, a.client, a.correlation_id
FROM audit_seals s LEFT JOIN audit_log a ON a.id = s.entry_id
WHERE s.day = $1
ORDER BY s.seq;

-- name: unsealed_entries
-- Entries older than $1 seconds that no link covers (the sealer runs every second).
SELECT min(a.id) AS first_id, count(*) AS count
FROM audit_log a
WHERE a.at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.entry_id = a.id);

-- name: purge_before
SELECT audit_purge($1);
