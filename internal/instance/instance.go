// Package instance registers a running `gatehouse serve` in the shared
// database with a lease it renews on a heartbeat. Sessions and recordings
// name the instance that owns them; when an instance's lease runs out (it
// was killed, its machine died, it lost the database for longer than the
// lease) any live instance may seal what it left open. A clean stop
// releases the lease at once.
//
// Lease times are read from the database's clock (PostgreSQL's
// clock_timestamp(); the local clock on SQLite, where every instance is one
// machine), so instances whose clocks disagree still agree on who is alive.
package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// DefaultLease is how long an instance counts as alive after its last
// renewal when Options.Lease is zero.
const DefaultLease = 15 * time.Second

// Options configures Register.
type Options struct {
	// Lease is how long a renewal keeps the instance alive; zero means
	// DefaultLease. The heartbeat renews it every Lease/5.
	Lease time.Duration
	// Now is the local clock (start time, SQLite's lease clock); nil means
	// time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Instance is this process's registration.
type Instance struct {
	id      string
	host    string
	started int64 // unix nanoseconds, local clock
	db      *store.DB
	lease   time.Duration
	now     func() time.Time
	log     *slog.Logger
}

// Register adds this process to the instances table with a fresh lease.
func Register(ctx context.Context, db *store.DB, o Options) (*Instance, error) {
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	host, _ := os.Hostname()
	in := &Instance{id: newID(host), host: host, started: o.Now().UnixNano(), db: db, lease: o.Lease, now: o.Now, log: o.Logger}
	now, err := in.DBNow(ctx)
	if err != nil {
		return nil, err
	}
	if err := in.insert(ctx, now); err != nil {
		return nil, fmt.Errorf("instance: register: %w", err)
	}
	return in, nil
}

// insert writes this instance's row with a lease from now.
func (in *Instance) insert(ctx context.Context, now int64) error {
	_, err := in.db.ExecContext(ctx, `INSERT INTO instances(id, host, pid, started, renewed, lease_until)
		VALUES (?, ?, ?, ?, ?, ?)`, in.id, in.host, os.Getpid(), in.started, now, now+in.lease.Nanoseconds())
	return err
}

func newID(host string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	if len(host) > 32 {
		host = host[:32]
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// ID is this instance's id, written to every session and recording it owns.
func (in *Instance) ID() string { return in.id }

// Lease is the lease length.
func (in *Instance) Lease() time.Duration { return in.lease }

// DBNow is the current time on the database's clock, in unix nanoseconds.
func (in *Instance) DBNow(ctx context.Context) (int64, error) { return DBNow(ctx, in.db, in.now) }

// DBNow is the current time on db's clock, in unix nanoseconds: the
// server's clock on PostgreSQL, now() on SQLite (one machine).
func DBNow(ctx context.Context, db *store.DB, now func() time.Time) (int64, error) {
	if !db.IsPostgres() {
		return now().UnixNano(), nil
	}
	var ns int64
	if err := db.QueryRowContext(ctx, `SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000 AS BIGINT)`).Scan(&ns); err != nil {
		return 0, fmt.Errorf("instance: database clock: %w", err)
	}
	return ns, nil
}

// ErrLeaseLost is returned by Renew when the lease had already run out: other
// instances may have sealed this instance's sessions.
var ErrLeaseLost = errors.New("instance: the lease ran out before it was renewed; other instances may have sealed this instance's sessions")

// Renew extends the lease. It returns ErrLeaseLost (and takes a new lease)
// when the old one had expired or was released, or when its row was gone
// (pruned by another instance after this one went unrenewed for longer
// than Retention: the row is written again).
func (in *Instance) Renew(ctx context.Context) error {
	now, err := in.DBNow(ctx)
	if err != nil {
		return err
	}
	res, err := in.db.ExecContext(ctx, `UPDATE instances SET renewed = ?, lease_until = ? WHERE id = ? AND lease_until >= ?`,
		now, now+in.lease.Nanoseconds(), in.id, now)
	if err != nil {
		return fmt.Errorf("instance: renew: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	res, err = in.db.ExecContext(ctx, `UPDATE instances SET renewed = ?, lease_until = ?, stopped = NULL WHERE id = ?`,
		now, now+in.lease.Nanoseconds(), in.id)
	if err != nil {
		return fmt.Errorf("instance: renew: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if err := in.insert(ctx, now); err != nil {
			return fmt.Errorf("instance: renew: register again: %w", err)
		}
	}
	return ErrLeaseLost
}

// Retention is how long the row of an instance that stopped or died is
// kept after its last renewal. Its sessions and recordings keep naming it
// (its id is in their rows and in the audit events of its recovery), and
// the row says which host and pid that was; after Retention the row goes,
// but only once the instance owns nothing recovery must still decide.
const Retention = 24 * time.Hour

// PruneDead deletes the rows of other instances whose lease has run out
// and which were last renewed more than Retention ago, and which own no
// open session and no open or seal-pending recording: recovery has
// claimed (moved to a live instance) and sealed everything they left. A
// row still owning such rows stays until recovery has taken them, however
// old it is. It returns the ids it deleted.
//
// Deleting a row never makes a live instance's work look dead sooner than
// its lease does: a row is only deleted long after its lease ran out, and
// recovery already treats an owner with no row as dead. An instance that
// was stalled for longer than Retention takes its row back on its next
// Renew (ErrLeaseLost, as for any lease that ran out).
func (in *Instance) PruneDead(ctx context.Context) ([]string, error) {
	now, err := in.DBNow(ctx)
	if err != nil {
		return nil, err
	}
	return prune(ctx, in.db, in.id, now, now-Retention.Nanoseconds())
}

// prune deletes, on db's clock at now, the rows other than self's that
// were last renewed before renewedBefore, whose lease ran out, and that own
// nothing open.
func prune(ctx context.Context, db *store.DB, self string, now, renewedBefore int64) ([]string, error) {
	const dead = `id <> ? AND lease_until < ? AND renewed < ?
		AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.end_at IS NULL AND s.instance_id = instances.id)
		AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.ended IS NULL AND r.instance_id = instances.id)
		AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.seal_pending = 1 AND r.instance_id = instances.id)`
	rows, err := db.QueryContext(ctx, `DELETE FROM instances WHERE `+dead+` RETURNING id`, self, now, renewedBefore)
	if err != nil {
		return nil, fmt.Errorf("instance: prune: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("instance: prune: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("instance: prune: %w", err)
	}
	return ids, nil
}

// Release ends the lease at once (a clean stop): what the instance still
// holds open is sealed by the next live instance's recovery pass.
func (in *Instance) Release(ctx context.Context) error {
	if _, err := in.db.ExecContext(ctx, `UPDATE instances SET lease_until = 0, stopped = ? WHERE id = ?`,
		in.now().UnixNano(), in.id); err != nil {
		return fmt.Errorf("instance: release: %w", err)
	}
	return nil
}

// Info describes a registered instance.
type Info struct {
	ID, Host   string
	PID        int
	Started    time.Time
	LeaseUntil time.Time // zero once stopped cleanly
}

// Live lists the instances whose lease has not run out, oldest first.
func Live(ctx context.Context, db *store.DB, now func() time.Time) ([]Info, error) {
	if now == nil {
		now = time.Now
	}
	t, err := DBNow(ctx, db, now)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, host, pid, started, lease_until FROM instances
		WHERE lease_until >= ? ORDER BY started`, t)
	if err != nil {
		return nil, fmt.Errorf("instance: %w", err)
	}
	defer rows.Close()
	var out []Info
	for rows.Next() {
		var i Info
		var started, until int64
		if err := rows.Scan(&i.ID, &i.Host, &i.PID, &started, &until); err != nil {
			return nil, fmt.Errorf("instance: %w", err)
		}
		i.Started, i.LeaseUntil = time.Unix(0, started).UTC(), time.Unix(0, until).UTC()
		out = append(out, i)
	}
	return out, rows.Err()
}
