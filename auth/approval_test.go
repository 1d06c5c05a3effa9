package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func victimRequest() ApprovalRequest {
	return ApprovalRequest{KeyFingerprint: "SHA256:victim", ClientAddr: "127.0.0.1:40000",
		ClientVersion: "SSH-2.0-OpenSSH_9.2", Login: "root", Target: "db-1"}
}

func TestApprovalCoversOnlyWhatWasAsked(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		a := &Approvals{DB: db, BaseURL: "https://gw", Window: 10 * time.Minute}
		p, err := a.Begin(connCtx(t), victimRequest())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Approve(p.Code, Identity{User: "alice"}); err != nil {
			t.Fatal(err)
		}
		if id, err := p.Wait(context.Background()); err != nil || id.User != "alice" {
			t.Fatalf("wait: %v %v", id, err)
		}
		other := func(f func(*ApprovalRequest)) ApprovalRequest { r := victimRequest(); f(&r); return r }
		tests := []struct {
			name  string
			req   ApprovalRequest
			reuse bool
		}{
			{"same key, address, target (new port)", other(func(r *ApprovalRequest) { r.ClientAddr = "127.0.0.1:40001" }), true},
			{"another target", other(func(r *ApprovalRequest) { r.Target = "web-1" }), false},
			{"another login", other(func(r *ApprovalRequest) { r.Login = "postgres" }), false},
			{"another source address", other(func(r *ApprovalRequest) { r.ClientAddr = "127.0.0.2:40000" }), false},
			{"another key", other(func(r *ApprovalRequest) { r.KeyFingerprint = "SHA256:attacker" }), false},
			{"the target list", other(func(r *ApprovalRequest) { r.Login, r.Target = "", "" }), false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, ok := a.Reuse(tt.req); ok != tt.reuse {
					t.Fatalf("reuse = %v, want %v", ok, tt.reuse)
				}
			})
		}
		if u, ok := a.KnownUser("SHA256:victim"); !ok || u != "alice" {
			t.Fatalf("known user %q %v", u, ok)
		}
	})
}

func TestApprovalDiesWithItsConnection(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		a := &Approvals{DB: db, BaseURL: "https://gw"}
		ctx, cancel := context.WithCancel(context.Background())
		p, err := a.Begin(ctx, victimRequest())
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := p.Wait(context.Background()); !errors.Is(err, ErrApprovalClosed) {
			t.Fatalf("wait after the connection closed: %v", err)
		}
		if err := a.Approve(p.Code, Identity{User: "alice"}); !errors.Is(err, ErrApprovalClosed) {
			t.Fatalf("approve after the connection closed: %v", err)
		}
		if _, err := a.Lookup(p.Code); !errors.Is(err, ErrApprovalClosed) {
			t.Fatalf("lookup: %v", err)
		}
		if _, err := a.Lookup("ZZZZ-ZZZZ"); !errors.Is(err, ErrApprovalUnknown) {
			t.Fatalf("lookup unknown: %v", err)
		}
		if a.Pending() != 0 {
			t.Fatalf("pending %d", a.Pending())
		}
	})
}

func TestApprovalsCappedPerSourceAndInTotal(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		a := &Approvals{DB: db, BaseURL: "https://gw", MaxPerSource: 3, MaxPending: 5}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		begin := func(addr string) error {
			r := victimRequest()
			r.ClientAddr = addr
			_, err := a.Begin(ctx, r)
			return err
		}
		for i := 0; i < 3; i++ {
			if err := begin(fmt.Sprintf("127.0.0.2:%d", 1000+i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := begin("127.0.0.2:2000"); !errors.Is(err, ErrApprovalsSource) {
			t.Fatalf("4th from one source: %v", err)
		}
		// IPv6 addresses of one /64 are one source.
		for i := 0; i < 2; i++ {
			if err := begin(fmt.Sprintf("[2001:db8::%d]:22", i+1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := begin("[2001:db8::ffff]:22"); !errors.Is(err, ErrApprovalsFull) {
			t.Fatalf("6th in total: %v", err)
		}
		cancel() // the connections close: their codes die and free the caps
		deadline := time.Now().Add(10 * time.Second)
		for a.Pending() != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := begin("127.0.0.2:3000"); err != nil {
			t.Fatalf("after the flood's connections closed: %v", err)
		}
	})
}

func TestApprovalExpires(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		a := &Approvals{DB: db, BaseURL: "https://gw", Now: func() time.Time { return now }}
		p, err := a.Begin(connCtx(t), victimRequest())
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(ApprovalTTL + time.Second)
		if err := a.Approve(p.Code, Identity{User: "alice"}); !errors.Is(err, ErrApprovalUnknown) {
			t.Fatalf("approve after expiry: %v", err)
		}
	})
}

// TestApprovalAcrossInstances: two instances on one database. A code shown
// by instance A is approved in the browser on instance B: A's waiting
// connection is released (by A's poll of the database) with the approving
// identity, and the approval is reused on either instance for the same key,
// address and target only. An attacker's code pending on A at the same time
// stays pending: the victim's approval covers the victim's code alone.
func TestApprovalAcrossInstances(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		key := []byte("0123456789abcdef0123456789abcdef")
		a := &Approvals{DB: db, CodeKey: key, Instance: "gw-a", BaseURL: "https://gw", Window: 10 * time.Minute}
		b := &Approvals{DB: db, CodeKey: key, Instance: "gw-b", BaseURL: "https://gw", Window: 10 * time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		victim, err := a.Begin(ctx, victimRequest())
		if err != nil {
			t.Fatal(err)
		}
		attack := victimRequest()
		attack.KeyFingerprint, attack.ClientAddr = "SHA256:attacker", "127.0.0.9:5000"
		attacker, err := a.Begin(ctx, attack)
		if err != nil {
			t.Fatal(err)
		}
		seen, err := b.Lookup(strings.ToLower(victim.Code))
		if err != nil || seen.KeyFingerprint != "SHA256:victim" || seen.ClientAddr != "127.0.0.1:40000" || seen.Asked() != "root@db-1" {
			t.Fatalf("B's view of A's code: %+v %v", seen, err)
		}
		approved := time.Now()
		if err := b.Approve(victim.Code, Identity{User: "alice", Groups: []string{"ops"}}); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer wcancel()
		id, err := victim.Wait(wctx)
		if err != nil || id.User != "alice" || len(id.Groups) != 1 {
			t.Fatalf("A's wait: %+v %v", id, err)
		}
		t.Logf("approval on B released the wait on A after %v", time.Since(approved).Round(time.Millisecond))
		short, scancel := context.WithTimeout(context.Background(), 3*ApprovalPoll)
		defer scancel()
		if id, err := attacker.Wait(short); err == nil {
			t.Fatalf("the attacker's code was released by the victim's approval: %+v", id)
		}
		if _, err := b.Lookup(attacker.Code); err != nil {
			t.Fatalf("the attacker's code is no longer pending: %v", err)
		}
		if err := b.Approve(victim.Code, Identity{User: "mallory"}); !errors.Is(err, ErrApprovalUnknown) {
			t.Fatalf("a second approval of a used code: %v", err)
		}
		for name, inst := range map[string]*Approvals{"A": a, "B": b} {
			if id, ok := inst.Reuse(victimRequest()); !ok || id.User != "alice" {
				t.Fatalf("reuse on %s: %+v %v", name, id, ok)
			}
			if _, ok := inst.Reuse(attack); ok {
				t.Fatalf("the attacker's request reuses the victim's approval on %s", name)
			}
			if u, ok := inst.KnownUser("SHA256:victim"); !ok || u != "alice" {
				t.Fatalf("known user on %s: %q %v", name, u, ok)
			}
		}
	})
}

// TestApprovalApprovedTwiceOnlyOnce: a code approved once cannot be
// approved again (by another user, on another instance).
func TestApprovalApprovedTwiceOnlyOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		a := &Approvals{DB: db, Instance: "gw-a", BaseURL: "https://gw"}
		b := &Approvals{DB: db, Instance: "gw-b", BaseURL: "https://gw"}
		p, err := a.Begin(connCtx(t), victimRequest())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Approve(p.Code, Identity{User: "alice"}); err != nil {
			t.Fatal(err)
		}
		if err := a.Approve(p.Code, Identity{User: "mallory"}); !errors.Is(err, ErrApprovalUnknown) {
			t.Fatalf("second approval: %v", err)
		}
		id, err := p.Wait(context.Background())
		if err != nil || id.User != "alice" {
			t.Fatalf("wait: %+v %v", id, err)
		}
	})
}

// TestApprovalCodeNotStored: the database holds a keyed hash of each code,
// not the code; a caller who knows only the hash (read access to the
// database) cannot approve with it.
func TestApprovalCodeNotStored(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		a := &Approvals{DB: db, CodeKey: []byte("k"), BaseURL: "https://gw"}
		p, err := a.Begin(connCtx(t), victimRequest())
		if err != nil {
			t.Fatal(err)
		}
		var hash string
		if err := db.QueryRow(`SELECT code_hash FROM ssh_approvals`).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		raw := strings.ReplaceAll(p.Code, "-", "")
		if strings.Contains(strings.ToUpper(hash), raw) || strings.Contains(hash, p.Code) || len(hash) != 64 {
			t.Fatalf("stored %q for code %s", hash, p.Code)
		}
		if err := a.Approve(hash, Identity{User: "mallory"}); !errors.Is(err, ErrApprovalUnknown) {
			t.Fatalf("approve with the stored hash: %v", err)
		}
		other := &Approvals{DB: db, CodeKey: []byte("another master key"), BaseURL: "https://gw"}
		if err := other.Approve(p.Code, Identity{User: "mallory"}); !errors.Is(err, ErrApprovalUnknown) {
			t.Fatalf("approve under another key: %v", err)
		}
	})
}

// TestApprovalCapsAcrossInstances: the caps per source and in total count
// every instance's pending codes, so a flood spread over instances gets no
// more codes than one instance would give.
func TestApprovalCapsAcrossInstances(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		a := &Approvals{DB: db, Instance: "gw-a", BaseURL: "https://gw", MaxPerSource: 2, MaxPending: 3}
		b := &Approvals{DB: db, Instance: "gw-b", BaseURL: "https://gw", MaxPerSource: 2, MaxPending: 3}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := victimRequest()
		if _, err := a.Begin(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Begin(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Begin(ctx, r); !errors.Is(err, ErrApprovalsSource) {
			t.Fatalf("3rd from one source over two instances: %v", err)
		}
		r.ClientAddr = "127.0.0.3:1"
		if _, err := b.Begin(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.ClientAddr = "127.0.0.4:1"
		if _, err := a.Begin(ctx, r); !errors.Is(err, ErrApprovalsFull) {
			t.Fatalf("4th in total over two instances: %v", err)
		}
	})
}

// connCtx is the context of an ssh connection that closes when the test
// ends.
func connCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// TestApprovalCapsHoldUnderConcurrentFlood: forty logins from one source
// start at once over two instances; exactly the per-source cap get codes
// (the count and the insert are one transaction under the approvals lock).
func TestApprovalCapsHoldUnderConcurrentFlood(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *sql.DB) {
		insts := []*Approvals{
			{DB: db, Instance: "gw-a", BaseURL: "https://gw", MaxPerSource: 10},
			{DB: db, Instance: "gw-b", BaseURL: "https://gw", MaxPerSource: 10},
		}
		ctx := connCtx(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		got, capped := 0, 0
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := victimRequest()
				r.ClientAddr = fmt.Sprintf("127.0.0.7:%d", 1000+i)
				_, err := insts[i%2].Begin(ctx, r)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					got++
				case errors.Is(err, ErrApprovalsSource):
					capped++
				default:
					t.Errorf("begin: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if got != 10 || capped != 30 {
			t.Fatalf("%d codes and %d refusals from one source, want 10 and 30", got, capped)
		}
	})
}
