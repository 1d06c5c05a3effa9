package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func victimRequest() ApprovalRequest {
	return ApprovalRequest{KeyFingerprint: "SHA256:victim", ClientAddr: "127.0.0.1:40000",
		ClientVersion: "SSH-2.0-OpenSSH_9.2", Login: "root", Target: "db-1"}
}

func TestApprovalCoversOnlyWhatWasAsked(t *testing.T) {
	a := &Approvals{BaseURL: "https://gw", Window: 10 * time.Minute}
	p, err := a.Begin(context.Background(), victimRequest())
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
}

func TestApprovalDiesWithItsConnection(t *testing.T) {
	a := &Approvals{BaseURL: "https://gw"}
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
}

func TestApprovalsCappedPerSourceAndInTotal(t *testing.T) {
	a := &Approvals{BaseURL: "https://gw", MaxPerSource: 3, MaxPending: 5}
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
}

func TestApprovalExpires(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a := &Approvals{BaseURL: "https://gw", Now: func() time.Time { return now }}
	p, err := a.Begin(context.Background(), victimRequest())
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(ApprovalTTL + time.Second)
	if err := a.Approve(p.Code, Identity{User: "alice"}); !errors.Is(err, ErrApprovalUnknown) {
		t.Fatalf("approve after expiry: %v", err)
	}
}
