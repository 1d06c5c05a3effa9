package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// copyTables are the tables `gatehouse migrate` copies, parents first. The
// SQLite-only FTS5 index (recording_commands_fts, rebuilt by pg_trgm on the
// other side) and schema_migrations (each database has its own) are not
// copied. A source table not listed here makes the copy refuse, so a table
// added by a later migration is never silently left behind.
var copyTables = []string{
	"secrets", "instances", "certificates", "sessions", "audit_events", "audit_tree", "audit_checkpoints", "audit_head",
	"recordings", "recording_commands", "users", "recovery_codes", "web_sessions", "login_tokens", "locks",
	"alert_cursor", "alert_deliveries", "ca_keys", "access_requests", "access_approvals", "ssh_key_users",
}

// notCopied are source tables that stay behind on purpose: besides the
// above, the live state of running instances (pending ssh approvals and
// termination requests), which means nothing once the gateway is stopped.
func notCopied(name string) bool {
	return name == "schema_migrations" || name == "ssh_approvals" || name == "session_terminations" || strings.HasPrefix(name, "recording_commands_fts") || strings.HasPrefix(name, "sqlite_")
}

// identityTables have a PostgreSQL identity column whose sequence must move
// past the copied ids.
var identityTables = []string{"audit_checkpoints", "alert_deliveries"}

// CopyCounts is rows per table.
type CopyCounts map[string]int64

// CopyTo copies every row of src (a SQLite database) into dst (a freshly
// migrated PostgreSQL database) in one transaction, and returns the rows
// copied per table (read from one snapshot of src). It refuses a dst that already holds audit events or
// sessions, and a src with a table it does not know.
func CopyTo(ctx context.Context, src, dst *DB) (CopyCounts, error) {
	if src.IsPostgres() || !dst.IsPostgres() {
		return nil, fmt.Errorf("store: migrate copies from SQLite to PostgreSQL")
	}
	if err := checkTables(ctx, src); err != nil {
		return nil, err
	}
	for _, t := range []string{"audit_events", "sessions", "secrets"} {
		n, err := count(ctx, dst.DB, t)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("store: the target database is not empty (%s has %d rows); migrate into a new database", t, n)
		}
	}
	// One read transaction on the source: every table is read from the
	// same snapshot, even if a gateway still writes to it.
	stx, err := src.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer stx.Rollback()
	tx, err := dst.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	counts := CopyCounts{}
	for _, t := range copyTables {
		n, err := copyTable(ctx, stx, tx, t)
		if err != nil {
			return nil, err
		}
		counts[t] = n
	}
	for _, t := range identityTables {
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence(?, 'id'), COALESCE((SELECT MAX(id) FROM `+t+`), 0) + 1, false)`, t); err != nil {
			return nil, fmt.Errorf("store: %s identity: %w", t, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return counts, nil
}

// CountRows returns the rows per copied table of db.
func CountRows(ctx context.Context, db *DB) (CopyCounts, error) {
	out := CopyCounts{}
	for _, t := range copyTables {
		n, err := count(ctx, db.DB, t)
		if err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, nil
}

func checkTables(ctx context.Context, src *DB) error {
	rows, err := src.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer rows.Close()
	known := map[string]bool{}
	for _, t := range copyTables {
		known[t] = true
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if !known[name] && !notCopied(name) {
			return fmt.Errorf("store: the source has a table this version does not know how to copy: %s", name)
		}
	}
	return rows.Err()
}

// count and copyTable name tables only from copyTables (constants); the
// column lists come from the source schema. Values always travel as
// parameters.
func count(ctx context.Context, db *sql.DB, table string) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count %s: %w", table, err)
	}
	return n, nil
}

func copyTable(ctx context.Context, src, tx *sql.Tx, table string) (int64, error) {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY rowid`)
	if err != nil {
		return 0, fmt.Errorf("store: read %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, fmt.Errorf("store: read %s: %w", table, err)
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	ins, err := tx.PrepareContext(ctx, `INSERT INTO `+table+`(`+strings.Join(cols, ", ")+`) VALUES (`+marks+`)`)
	if err != nil {
		return 0, fmt.Errorf("store: write %s: %w", table, err)
	}
	defer ins.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, fmt.Errorf("store: read %s: %w", table, err)
		}
		if _, err := ins.ExecContext(ctx, vals...); err != nil {
			return n, fmt.Errorf("store: write %s row %d: %w", table, n+1, err)
		}
		n++
	}
	return n, rows.Err()
}
