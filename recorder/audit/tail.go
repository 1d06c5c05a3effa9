package audit

import (
	"context"
	"database/sql"
	"fmt"
)

// LastEventID returns the id of the newest event, 0 for an empty log.
func LastEventID(ctx context.Context, db *sql.DB) (int64, error) {
	var id sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(id) FROM audit_events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("audit: head: %w", err)
	}
	return id.Int64, nil
}

// EventsAfter calls fn for at most limit events with an id above after, in
// chain order, with Details parsed. Followers of the log (alerts) use it to
// see every committed event exactly once.
func EventsAfter(ctx context.Context, db *sql.DB, after int64, limit int, fn func(StoredEvent) error) error {
	rows, err := db.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return fmt.Errorf("audit: tail: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := scanEvent(rows, true)
		if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Record returns the export form of the event, chain hashes included.
func (ev *StoredEvent) Record() EventRecord { return storedRecord(ev) }
