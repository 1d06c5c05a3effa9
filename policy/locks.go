package policy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Lock is an administrator's lock on a user.
type Lock struct {
	User, Reason, By string
	Created, Until   time.Time // Until zero: until lifted
}

// Locks stores user locks. A lock is checked at every new connection; the
// caller also ends the user's live sessions when it locks.
type Locks struct {
	db *sql.DB
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// NewLocks returns the lock store over db.
func NewLocks(db *sql.DB) *Locks { return &Locks{db: db} }

func (l *Locks) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Lock locks user for d (zero: until lifted), replacing an earlier lock.
func (l *Locks) Lock(ctx context.Context, user, reason, by string, d time.Duration) error {
	if user == "" || reason == "" {
		return errors.New("policy: a lock needs a user and a reason")
	}
	var until int64
	if d > 0 {
		until = l.now().Add(d).Unix()
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO locks(user_name, reason, locked_by, created, until) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(user_name) DO UPDATE SET reason = excluded.reason, locked_by = excluded.locked_by,
		created = excluded.created, until = excluded.until`, user, reason, by, l.now().Unix(), until)
	if err != nil {
		return fmt.Errorf("policy: lock %s: %w", user, err)
	}
	return nil
}

// Unlock lifts user's lock.
func (l *Locks) Unlock(ctx context.Context, user string) error {
	_, err := l.db.ExecContext(ctx, `DELETE FROM locks WHERE user_name = ?`, user)
	return err
}

// Locked returns user's lock if one is in force. It fails closed: a
// database error reads as locked.
func (l *Locks) Locked(ctx context.Context, user string) (Lock, bool) {
	lk := Lock{User: user}
	var created, until int64
	err := l.db.QueryRowContext(ctx, `SELECT reason, locked_by, created, until FROM locks WHERE user_name = ?`, user).
		Scan(&lk.Reason, &lk.By, &created, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return Lock{}, false
	}
	if err != nil {
		return Lock{User: user, Reason: "lock state unavailable"}, true
	}
	lk.Created = time.Unix(created, 0).UTC()
	if until > 0 {
		lk.Until = time.Unix(until, 0).UTC()
		if !l.now().Before(lk.Until) {
			return Lock{}, false
		}
	}
	return lk, true
}

// List returns the locks in force.
func (l *Locks) List(ctx context.Context) ([]Lock, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT user_name FROM locks ORDER BY user_name`)
	if err != nil {
		return nil, err
	}
	var users []string
	for rows.Next() {
		var u string
		rows.Scan(&u)
		users = append(users, u)
	}
	rows.Close()
	var out []Lock
	for _, u := range users {
		if lk, ok := l.Locked(ctx, u); ok {
			out = append(out, lk)
		}
	}
	return out, rows.Err()
}
