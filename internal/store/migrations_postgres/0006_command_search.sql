-- "Command contains" on the sessions page: where SQLite has an FTS5 trigram
-- table, PostgreSQL has pg_trgm (in Debian's postgresql-15 contrib): a GIN
-- trigram index on the command text serves ILIKE '%text%' directly, so no
-- shadow table or triggers are needed. Creating the extension needs a role
-- allowed to (the database owner on PostgreSQL 13+, pg_trgm is trusted).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX recording_commands_trgm ON recording_commands USING gin (text gin_trgm_ops);
CREATE INDEX sessions_recording ON sessions(recording_id);
