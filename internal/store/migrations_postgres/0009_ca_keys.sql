-- CA key rotation (PostgreSQL twin of migrations/0009_ca_keys.sql). SQLite
-- orders keys created in the same second by their implicit rowid; here that
-- is an explicit identity column of the same name, so the query is shared.
CREATE TABLE ca_keys (
	ca TEXT NOT NULL,
	key_id TEXT NOT NULL,
	secret TEXT NOT NULL,
	state TEXT NOT NULL,
	created BIGINT NOT NULL,
	activate_at BIGINT NOT NULL DEFAULT 0,
	retired_at BIGINT NOT NULL DEFAULT 0,
	rowid BIGINT GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (ca, key_id)
);
