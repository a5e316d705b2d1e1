-- The database plumbing's own statements (shared/db.py): schemas, migrations, a ping.

-- name: lock_schema_creation
-- Serialises CREATE SCHEMA IF NOT EXISTS between instances starting together (it races).
SELECT pg_advisory_lock(hashtext('schema:' || $1::text));

-- name: create_schema_statement
-- The statement creating schema $1, its name quoted by PostgreSQL.
SELECT format('CREATE SCHEMA IF NOT EXISTS %I', $1::text);

-- name: search_path
SELECT current_setting('search_path');

-- name: lock_migrations
SELECT pg_advisory_lock(hashtext($1 || '.migrations'));

-- name: unlock_migrations
SELECT pg_advisory_unlock(hashtext($1 || '.migrations'));

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());

-- name: applied_migrations
SELECT version, checksum FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: ping
SELECT 1;

-- name: current_schema
-- The schema unqualified names resolve to (NULL when none of the search path exists).
SELECT current_schema();
