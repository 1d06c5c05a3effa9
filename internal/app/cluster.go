package app

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/recorder"
)

// watchTerminations ends the sessions this instance runs that the web UI of
// another instance (or this one, in a race) asked to end through the shared
// database, every recorder.TerminationPoll, until quit closes. A request for
// a session running elsewhere is left for its instance.
func (a *App) watchTerminations(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(recorder.TerminationPoll)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		a.applyTerminations()
	}
}

// applyTerminations runs one poll of the termination requests.
func (a *App) applyTerminations() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqs, err := a.Sessions.TerminationRequests(ctx, time.Now())
	if err != nil {
		a.Log.Warn("termination requests: poll failed; terminations from other instances wait", "err", err)
		return
	}
	for _, r := range reqs {
		if !a.Gateway.Terminate(r.SessionID, r.Reason) {
			continue
		}
		a.Log.Info("session terminated at another instance's request", "session", r.SessionID, "by", r.RequestedBy)
		if err := a.Sessions.TerminationDone(ctx, r.SessionID); err != nil {
			a.Log.Warn("termination request not cleared", "session", r.SessionID, "err", err)
		}
	}
}
