package auth

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

type totpEnv struct {
	t      *TOTP
	now    time.Time
	events []string
	secret string
}

func newTOTPEnv(t *testing.T) *totpEnv {
	db, err := store.Open(filepath.Join(t.TempDir(), "gh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	e := &totpEnv{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	e.t = NewTOTP(db.DB, kr, TOTPConfig{MaxAttempts: 5, Lockout: 15 * time.Minute, Now: func() time.Time { return e.now },
		OnEvent: func(user, what string) { e.events = append(e.events, user+":"+what) }})
	ctx := context.Background()
	if err := e.t.BindUser(ctx, Identity{User: "alice", Issuer: "iss", Subject: "sub-1"}); err != nil {
		t.Fatal(err)
	}
	en, err := e.t.BeginEnrol(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.secret = en.Secret
	if _, err := e.t.ConfirmEnrol(ctx, "alice", e.code(e.now)); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Minute)
	return e
}

func (e *totpEnv) code(at time.Time) string {
	c, _ := totp.GenerateCode(e.secret, at)
	return c
}

func TestTOTPAcceptsOnceWithOneStepOfSkew(t *testing.T) {
	e := newTOTPEnv(t)
	ctx := context.Background()
	tests := []struct {
		name string
		at   time.Time
		want error
	}{
		{"current", e.now, nil},
		{"replayed", e.now, ErrTOTPReplay},
		{"next step (clock ahead)", e.now.Add(30 * time.Second), nil},
		{"two steps ago", e.now.Add(-60 * time.Second), ErrTOTPInvalid},
		{"two steps ahead", e.now.Add(90 * time.Second), ErrTOTPInvalid},
	}
	for _, tt := range tests {
		if err := e.t.Verify(ctx, "alice", e.code(tt.at)); !errors.Is(err, tt.want) {
			t.Fatalf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestTOTPConcurrentIdenticalCodes(t *testing.T) {
	e := newTOTPEnv(t)
	code := e.code(e.now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, replay := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := e.t.Verify(context.Background(), "alice", code)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrTOTPReplay):
				replay++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || replay != 7 {
		t.Fatalf("%d accepted, %d replays; want exactly one accepted", ok, replay)
	}
}

func TestTOTPBruteForceLocksOut(t *testing.T) {
	e := newTOTPEnv(t)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if err := e.t.Verify(ctx, "alice", "000000"); !errors.Is(err, ErrTOTPInvalid) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if err := e.t.Verify(ctx, "alice", "000000"); !errors.Is(err, ErrTOTPLocked) {
		t.Fatalf("fifth failure: %v", err)
	}
	if err := e.t.Verify(ctx, "alice", e.code(e.now)); !errors.Is(err, ErrTOTPLocked) {
		t.Fatalf("a right code while locked: %v", err)
	}
	if len(e.events) != 1 || e.events[0] != "alice:lockout" {
		t.Fatalf("events %v", e.events)
	}
	e.now = e.now.Add(16 * time.Minute)
	if err := e.t.Verify(ctx, "alice", e.code(e.now)); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

func TestRecoveryCodeWorksOnceAndResetReEnrols(t *testing.T) {
	e := newTOTPEnv(t)
	ctx := context.Background()
	e.t.Reset(ctx, "alice")
	if ok, _ := e.t.Enrolled(ctx, "alice"); ok {
		t.Fatal("still enrolled after reset")
	}
	en, _ := e.t.BeginEnrol(ctx, "alice")
	e.secret = en.Secret
	codes, err := e.t.ConfirmEnrol(ctx, "alice", e.code(e.now))
	if err != nil || len(codes) != 10 {
		t.Fatalf("codes %v err %v", codes, err)
	}
	if err := e.t.Verify(ctx, "alice", codes[3]); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if err := e.t.Verify(ctx, "alice", codes[3]); !errors.Is(err, ErrTOTPInvalid) {
		t.Fatalf("recovery code reused: %v", err)
	}
}

func TestBindUserKeyedBySubject(t *testing.T) {
	e := newTOTPEnv(t)
	err := e.t.BindUser(context.Background(), Identity{User: "alice", Issuer: "iss", Subject: "someone-else"})
	if err == nil {
		t.Fatal("another subject took over the user name")
	}
}

func TestTOTPConcurrentWrongCodesGetNoMoreThanTheLimit(t *testing.T) {
	e := newTOTPEnv(t)
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results <- e.t.Verify(ctx, "alice", fmt.Sprintf("%06d", i))
		}(i)
	}
	wg.Wait()
	close(results)
	guesses := 0
	for err := range results {
		switch {
		case errors.Is(err, ErrTOTPInvalid), err == nil:
			guesses++ // compared with the secret
		case errors.Is(err, ErrTOTPLocked):
			// refused before any comparison, or the guess that locked
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	// MaxAttempts is 5: four wrong codes answer "invalid", the fifth locks.
	if guesses > 4 {
		t.Fatalf("%d of %d concurrent codes were checked as guesses; the limit is 5", guesses, n)
	}
	if err := e.t.Verify(ctx, "alice", e.code(e.now)); !errors.Is(err, ErrTOTPLocked) {
		t.Fatalf("right code after the lockout: %v", err)
	}
}

func TestTOTPEmptyAnswersAreNotGuesses(t *testing.T) {
	e := newTOTPEnv(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		for _, empty := range []string{"", " ", "\t"} {
			if err := e.t.Verify(ctx, "alice", empty); !errors.Is(err, ErrTOTPEmpty) {
				t.Fatalf("empty answer: %v", err)
			}
		}
	}
	if err := e.t.Verify(ctx, "alice", e.code(e.now)); err != nil {
		t.Fatalf("right code after empty answers: %v", err)
	}
}
