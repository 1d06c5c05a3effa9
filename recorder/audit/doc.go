// Package audit keeps the tamper-evident audit log: one writer appends
// events to a hash chain and a Merkle tree and signs the head with every
// batch; it writes signed checkpoints and ships them (file, HTTP, a JSON-lines
// stream), rotates its signing keys, exports the log with its proof, verifies
// a stored log or an export, and prunes old events only under a signed prune
// event. It owns the tables audit_events, audit_tree, audit_checkpoints and
// audit_head; other packages call its functions (only the store-level copy of
// a whole database, for backup and migration, reads the tables directly).
//
// Callers fail closed: an event that cannot be appended is an error the
// caller refuses on.
package audit
