package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/usererr"
)

// TOTP errors; the messages are what users see.
var (
	ErrTOTPInvalid     = usererr.New("auth", "that code is not valid; check the clock of your authenticator")
	ErrTOTPReplay      = usererr.New("auth", "that code was already used; wait for the next one")
	ErrTOTPLocked      = usererr.New("auth", "too many wrong codes; TOTP is locked for a while (an admin can reset it)")
	ErrTOTPNotEnrolled = usererr.New("auth", "no TOTP enrolled; log in to the web UI to enrol")
	ErrTOTPEmpty       = usererr.New("auth", "no code entered; type the 6-digit code from your authenticator")
)

const totpPeriod = 30

// TOTPConfig configures the second factor.
type TOTPConfig struct {
	Issuer      string // shown in authenticator apps
	MaxAttempts int    // failures in a row before a lockout
	Lockout     time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnEvent, if set, is told about lockouts (for the audit log).
	OnEvent func(user, what string)
}

// TOTP is the TOTP second factor (RFC 6238, SHA-1, 6 digits, 30 s), with
// secrets sealed at rest, each time step accepted once, a lockout after
// repeated failures and one-time recovery codes.
type TOTP struct {
	db  *sql.DB
	kr  *secrets.Keyring
	cfg TOTPConfig
}

// NewTOTP returns the TOTP store over db.
func NewTOTP(db *sql.DB, kr *secrets.Keyring, cfg TOTPConfig) *TOTP {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Lockout <= 0 {
		cfg.Lockout = 15 * time.Minute
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "Gatehouse"
	}
	return &TOTP{db: db, kr: kr, cfg: cfg}
}

// BindUser records that user name belongs to (issuer, subject). A name
// already bound to another identity is refused: identities are keyed by
// issuer and subject, never by name or e-mail.
func (t *TOTP) BindUser(ctx context.Context, id Identity) error {
	var iss, sub string
	err := t.db.QueryRowContext(ctx, `SELECT issuer, subject FROM users WHERE user_name = ?`, id.User).Scan(&iss, &sub)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = t.db.ExecContext(ctx, `INSERT INTO users(user_name, issuer, subject, created) VALUES (?, ?, ?, ?)`,
			id.User, id.Issuer, id.Subject, t.cfg.Now().Unix())
		if err != nil {
			return usererr.Wrap(err, "auth", id.User+" is already bound to another identity")
		}
		return nil
	case err != nil:
		return fmt.Errorf("auth: %w", err)
	case iss != id.Issuer || sub != id.Subject:
		return usererr.New("auth", fmt.Sprintf("the user name %q belongs to another identity; ask an admin", id.User))
	}
	return nil
}

// Enrolled reports whether user has a confirmed TOTP secret.
func (t *TOTP) Enrolled(ctx context.Context, user string) (bool, error) {
	var sealed []byte
	err := t.db.QueryRowContext(ctx, `SELECT totp_secret FROM users WHERE user_name = ?`, user).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return len(sealed) > 0, err
}

// Enrolment is what the enrolment page shows.
type Enrolment struct {
	Secret string // base32, for typing into an authenticator
	URL    string // otpauth:// URL
	QRPNG  []byte // the URL as a QR code
}

// BeginEnrol creates a pending secret for user (replacing an earlier
// pending one). It becomes active only once a code from it is confirmed.
func (t *TOTP) BeginEnrol(ctx context.Context, user string) (Enrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: t.cfg.Issuer, AccountName: user, Period: totpPeriod})
	if err != nil {
		return Enrolment{}, err
	}
	sealed, err := t.kr.Seal("totp-pending:"+user, []byte(key.Secret()))
	if err != nil {
		return Enrolment{}, err
	}
	res, err := t.db.ExecContext(ctx, `UPDATE users SET totp_pending = ? WHERE user_name = ?`, sealed, user)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		return Enrolment{}, fmt.Errorf("auth: begin enrolment for %s: %v", user, err)
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return Enrolment{}, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, err
	}
	return Enrolment{Secret: key.Secret(), URL: key.URL(), QRPNG: buf.Bytes()}, nil
}

// ConfirmEnrol activates the pending secret when code matches it, and
// returns ten one-time recovery codes (stored hashed).
func (t *TOTP) ConfirmEnrol(ctx context.Context, user, code string) ([]string, error) {
	var pending []byte
	if err := t.db.QueryRowContext(ctx, `SELECT totp_pending FROM users WHERE user_name = ?`, user).Scan(&pending); err != nil || len(pending) == 0 {
		return nil, usererr.Wrap(err, "auth", "no enrolment in progress; reload the page")
	}
	secret, err := t.kr.Open("totp-pending:"+user, pending)
	if err != nil {
		return nil, err
	}
	step, ok := t.match(string(secret), code, 0)
	if !ok {
		return nil, ErrTOTPInvalid
	}
	sealed, err := t.kr.Seal("totp:"+user, secret)
	if err != nil {
		return nil, err
	}
	codes := make([]string, 10)
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE users SET totp_secret = ?, totp_pending = NULL, totp_last_step = ?,
		totp_failures = 0, totp_locked_until = 0 WHERE user_name = ?`, sealed, step, user); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_name = ?`, user); err != nil {
		return nil, err
	}
	for i := range codes {
		codes[i] = newRecoveryCode()
		h := sha256.Sum256([]byte(codes[i]))
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes(user_name, code_hash) VALUES (?, ?)`, user, h[:]); err != nil {
			return nil, err
		}
	}
	return codes, tx.Commit()
}

func newRecoveryCode() string {
	b := make([]byte, 10)
	rand.Read(b)
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return s[:8] + "-" + s[8:16]
}

// match finds the time step (now-1, now, now+1) whose code equals code and
// is after lastStep, comparing in constant time.
func (t *TOTP) match(secret, code string, lastStep int64) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0, false
	}
	now := t.cfg.Now().Unix() / totpPeriod
	for step := now - 1; step <= now+1; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totp.ValidateOpts{
			Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, step > lastStep
		}
	}
	return 0, false
}

// Verify checks a code (or a recovery code) for user. Each time step is
// accepted once: the last accepted step advances in one conditional UPDATE,
// so of two concurrent submissions of the same code exactly one succeeds.
//
// Guesses are counted before they are checked: one conditional UPDATE takes
// an attempt only while the user is not locked and has attempts left, so
// however many wrong codes arrive at once, no more than MaxAttempts are ever
// compared with the secret before the lockout. An empty or malformed answer
// (which can never be right) is not a guess and is not counted.
func (t *TOTP) Verify(ctx context.Context, user, code string) error {
	code = strings.TrimSpace(code)
	if code == "" {
		return ErrTOTPEmpty
	}
	recovery := strings.Contains(code, "-")
	if !recovery && !sixDigits(code) || recovery && len(code) > 32 {
		return ErrTOTPInvalid
	}
	sealed, last, err := t.takeAttempt(ctx, user)
	if err != nil {
		return err
	}
	if recovery {
		return t.useRecoveryCode(ctx, user, code)
	}
	secret, err := t.kr.Open("totp:"+user, sealed)
	if err != nil {
		return err
	}
	step, ok := t.match(string(secret), code, last)
	if !ok {
		if step != 0 {
			t.refund(ctx, user) // a right but used code is not a guess
			return ErrTOTPReplay
		}
		return t.failed(ctx, user)
	}
	res, err := t.db.ExecContext(ctx, `UPDATE users SET totp_last_step = ?, totp_failures = 0
		WHERE user_name = ? AND totp_last_step < ?`, step, user, step)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.refund(ctx, user)
		return ErrTOTPReplay
	}
	return nil
}

func sixDigits(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// takeAttempt counts one guess for user if the user is enrolled, not locked
// and has attempts left, and returns the sealed secret and last used step.
func (t *TOTP) takeAttempt(ctx context.Context, user string) (sealed []byte, last int64, err error) {
	now := t.cfg.Now().Unix()
	err = t.db.QueryRowContext(ctx, `UPDATE users SET totp_failures = totp_failures + 1
		WHERE user_name = ? AND totp_secret IS NOT NULL AND length(totp_secret) > 0
		AND totp_locked_until <= ? AND totp_failures < ?
		RETURNING totp_secret, totp_last_step`, user, now, t.cfg.MaxAttempts).Scan(&sealed, &last)
	if err == nil {
		return sealed, last, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("auth: %w", err)
	}
	if ok, err := t.Enrolled(ctx, user); err != nil || !ok {
		return nil, 0, ErrTOTPNotEnrolled
	}
	return nil, 0, ErrTOTPLocked
}

// refund gives back an attempt that was not a guess.
func (t *TOTP) refund(ctx context.Context, user string) {
	t.db.ExecContext(ctx, `UPDATE users SET totp_failures = totp_failures - 1 WHERE user_name = ? AND totp_failures > 0`, user)
}

// failed settles a wrong guess: the attempt stays counted, and the one that
// used the last attempt locks the user's TOTP.
func (t *TOTP) failed(ctx context.Context, user string) error {
	var failures int
	err := t.db.QueryRowContext(ctx, `SELECT totp_failures FROM users WHERE user_name = ?`, user).Scan(&failures)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if failures < t.cfg.MaxAttempts {
		return ErrTOTPInvalid
	}
	until := t.cfg.Now().Unix() + int64(t.cfg.Lockout/time.Second)
	res, err := t.db.ExecContext(ctx, `UPDATE users SET totp_failures = 0, totp_locked_until = ?
		WHERE user_name = ? AND totp_failures >= ?`, until, user, t.cfg.MaxAttempts)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 && t.cfg.OnEvent != nil {
		t.cfg.OnEvent(user, "lockout")
	}
	return ErrTOTPLocked
}

func (t *TOTP) useRecoveryCode(ctx context.Context, user, code string) error {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(code))))
	res, err := t.db.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_name = ? AND code_hash = ? AND used_at = 0`,
		t.cfg.Now().Unix(), user, h[:])
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return t.failed(ctx, user)
	}
	_, err = t.db.ExecContext(ctx, `UPDATE users SET totp_failures = 0 WHERE user_name = ?`, user)
	return err
}

// Reset removes user's TOTP (admin action); the next login enrols again.
func (t *TOTP) Reset(ctx context.Context, user string) error {
	_, err := t.db.ExecContext(ctx, `UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0,
		totp_failures = 0, totp_locked_until = 0 WHERE user_name = ?`, user)
	if err == nil {
		_, err = t.db.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_name = ?`, user)
	}
	return err
}
