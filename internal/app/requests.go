package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/recorder/audit"
)

// requestSweep is how often grants are reloaded from the database (changes
// made by another gateway or the CLI) and expired requests are audited.
const requestSweep = 2 * time.Second

// expireRequests reloads grants and audits each request that expired
// (request.expired) until quit closes.
func (a *App) expireRequests(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(requestSweep)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		expired, err := a.Requests.ExpireDue(ctx, a.Policy)
		if err != nil {
			a.Log.Warn("access requests: sweep failed; grants still end at their time", "err", err)
		}
		for _, ar := range expired {
			what := "grant"
			if ar.Decided.IsZero() {
				what = "request (never decided)"
			}
			if err := a.auditor().Append(ctx, audit.Event{Type: audit.EventRequestExpired, User: ar.User,
				Reason:  fmt.Sprintf("access %s for role %s expired", what, ar.Role),
				Details: map[string]any{"request": ar.ID, "role": ar.Role, "approvers": strings.Join(ar.Approvers, ",")}}); err != nil {
				a.Log.Error("audit append failed", "type", audit.EventRequestExpired, "request", ar.ID, "err", err)
			}
		}
		cancel()
	}
}
