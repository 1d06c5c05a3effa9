package auth

import (
	"context"
	"fmt"
	"time"
)

// The read side of auth's tables for the web pages: the web front door
// shows these rows and never runs SQL on certificates or users itself.

// IssuedCert is one user certificate the user CA issued.
type IssuedCert struct {
	Serial         uint64
	KeyFingerprint string
	ValidBefore    time.Time
}

// UserCertificates lists user's most recent user certificates, newest
// first, at most limit of them.
func (a *Authority) UserCertificates(ctx context.Context, user string, limit int) ([]IssuedCert, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT serial, key_fingerprint, valid_before FROM certificates
		WHERE user_name = ? AND kind = 'user' ORDER BY issued_at DESC LIMIT ?`, user, limit)
	if err != nil {
		return nil, fmt.Errorf("auth: list certificates: %w", err)
	}
	defer rows.Close()
	var out []IssuedCert
	for rows.Next() {
		var serial, until int64
		var c IssuedCert
		if err := rows.Scan(&serial, &c.KeyFingerprint, &until); err != nil {
			return nil, fmt.Errorf("auth: list certificates: %w", err)
		}
		c.Serial, c.ValidBefore = uint64(serial), time.Unix(until, 0).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list certificates: %w", err)
	}
	return out, nil
}

// UserInfo is what auth knows about one user: the identity the name is
// bound to and the state of their second factor.
type UserInfo struct {
	Name, Issuer, Subject string
	// Enrolled reports whether a TOTP secret is active.
	Enrolled bool
	// TOTPLockedUntil is when a TOTP lockout ends (zero when none was
	// ever set; it may be in the past).
	TOTPLockedUntil time.Time
}

// Users lists every user auth knows, by name.
func (t *TOTP) Users(ctx context.Context) ([]UserInfo, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT user_name, issuer, subject, totp_secret IS NOT NULL, totp_locked_until
		FROM users ORDER BY user_name`)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	var out []UserInfo
	for rows.Next() {
		var u UserInfo
		var locked int64
		if err := rows.Scan(&u.Name, &u.Issuer, &u.Subject, &u.Enrolled, &locked); err != nil {
			return nil, fmt.Errorf("auth: list users: %w", err)
		}
		if locked > 0 {
			u.TOTPLockedUntil = time.Unix(locked, 0).UTC()
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	return out, nil
}
