-- The signed head of the audit log: one row, rewritten in the same
-- transaction as every batch of events and every checkpoint. Its note (signed
-- with the sealed audit key) states the tree size, the Merkle root and how
-- many checkpoints have been written, so a rewrite, a truncation or a deleted
-- checkpoint is caught without a copy kept elsewhere.
CREATE TABLE audit_head (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	tree_size INTEGER NOT NULL,
	checkpoints INTEGER NOT NULL,
	note TEXT NOT NULL                 -- signed note (golang.org/x/mod/sumdb/note)
);
