-- The signed head of the audit log (PostgreSQL twin of migrations/0008_audit_head.sql).
CREATE TABLE audit_head (
	id BIGINT PRIMARY KEY CHECK (id = 1),
	tree_size BIGINT NOT NULL,
	checkpoints BIGINT NOT NULL,
	note TEXT NOT NULL
);
