package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gatehouse/gatehouse/internal/instance"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// abandonedReason is the end reason of a session whose instance died.
const abandonedReason = "gateway stopped unexpectedly"

// register adds this process to the instances table (internal/instance).
func (a *App) register(ctx context.Context) error {
	in, err := instance.Register(ctx, a.Env.DB, instance.Options{Lease: a.Config.Database.InstanceLease, Logger: a.Log})
	if err != nil {
		return err
	}
	a.Instance = in
	a.Log.Info("instance registered", "instance", in.ID(), "lease", in.Lease())
	return nil
}

// recoverAtStart seals what dead instances left open. On SQLite only one
// process uses the file, so everything open that is not this instance's
// was left by a crash; on PostgreSQL only instances whose lease has run
// out count (the others are alive and own their sessions).
func (a *App) recoverAtStart(ctx context.Context) error {
	cutoff := int64(math.MaxInt64)
	if a.Env.DB.IsPostgres() {
		var err error
		if cutoff, err = a.Instance.DBNow(ctx); err != nil {
			return err
		}
	}
	if err := a.recoverDead(ctx, cutoff); err != nil {
		return err
	}
	a.pruneInstances(ctx)
	return nil
}

// pruneEvery is how often the heartbeat deletes the rows of instances dead
// for longer than instance.Retention: they pile up slowly (one per
// stopped or crashed process), so once an hour is plenty.
const pruneEvery = time.Hour

// pruneInstances deletes the rows of instances that died or stopped more
// than instance.Retention ago and own nothing recovery has not yet sealed.
// It runs only after a recovery pass that succeeded; a failure is logged
// and retried at the next pass (the rows are harmless meanwhile).
func (a *App) pruneInstances(ctx context.Context) {
	a.lastPrune = time.Now()
	ids, err := a.Instance.PruneDead(ctx)
	if err != nil {
		a.Log.Warn("pruning the rows of long-dead instances failed; retrying later", "err", err)
		return
	}
	if len(ids) > 0 {
		a.Log.Info("pruned the rows of instances stopped or dead for longer than their retention",
			"instances", ids, "retention", instance.Retention)
	}
}

// recoverDead seals the open sessions and recordings of every instance
// whose lease ended before cutoff, writing an abnormal session-end event
// for each session this instance wins, and retries this instance's pending
// seals. A session is claimed before anything else, so of several live
// instances exactly one seals it.
func (a *App) recoverDead(ctx context.Context, cutoff int64) error {
	if _, err := a.Recs.RetryPendingSeals(ctx); err != nil {
		return fmt.Errorf("recover recordings: %w", err)
	}
	for id, s := range a.unfinished { // claimed by an earlier pass that failed midway
		if err := a.finishClaimed(ctx, s); err != nil {
			return err
		}
		delete(a.unfinished, id)
	}
	open, err := a.Sessions.OpenOfDead(ctx, cutoff)
	if err != nil {
		return err
	}
	for _, s := range open {
		if err := a.recoverSession(ctx, s); err != nil {
			return err
		}
	}
	if _, err := a.Recs.RecoverDead(ctx, cutoff); err != nil {
		return fmt.Errorf("recover recordings: %w", err)
	}
	return nil
}

// recoverSession claims one dead instance's open session, seals its
// recording, and ends it with an abnormal session-end event.
func (a *App) recoverSession(ctx context.Context, s recorder.OpenSession) error {
	won, err := a.Sessions.Claim(ctx, s.ID, s.Instance)
	if err != nil || !won {
		return err
	}
	if err := a.finishClaimed(ctx, s); err != nil {
		// Now this instance's: no other instance will end it while this
		// one lives, so the next pass tries again.
		if a.unfinished == nil {
			a.unfinished = map[string]recorder.OpenSession{}
		}
		a.unfinished[s.ID] = s
		return err
	}
	return nil
}

// finishClaimed seals a claimed session's recording, logs the abnormal end
// and ends its row.
func (a *App) finishClaimed(ctx context.Context, s recorder.OpenSession) error {
	var rec recorder.Recovered
	var won bool
	var err error
	if s.RecordingID != "" {
		if rec, won, err = a.Recs.ClaimAndSeal(ctx, s.RecordingID, s.Instance); err != nil {
			return fmt.Errorf("recover recordings: %w", err)
		}
		if !won { // sealed by the recordings pass of another instance
			if m, err := a.Recs.Meta(ctx, s.RecordingID); err == nil {
				rec.SHA256 = m.SHA256
			}
		}
	}
	ev := audit.Event{Type: audit.EventSessionEnd, User: s.User, ClientAddr: s.ClientAddr, Target: s.Target,
		Login: s.Login, SessionID: s.ID, Reason: abandonedReason + "; recording sealed as incomplete",
		Details: map[string]any{"abnormal": true, "recording": s.RecordingID, "recording_sha256": rec.SHA256,
			"recording_complete": false, "instance": s.Instance, "sealed_by": a.Instance.ID()}}
	if rec.Pending {
		ev.Details["recording_seal_pending"] = true
	}
	if err := a.Audit.Append(ctx, ev); err != nil {
		return err
	}
	s.EndReason, s.RecordingSHA256 = abandonedReason, rec.SHA256
	if err := a.Sessions.EndClaimed(ctx, s.Session, time.Now()); err != nil {
		return err
	}
	a.Log.Warn("sealed session left open by a dead instance", "session", s.ID, "user", s.User, "target", s.Target,
		"instance", s.Instance)
	return nil
}

// heartbeat renews the lease every fifth of it and then runs a recovery
// pass, until quit is closed.
func (a *App) heartbeat(quit, done chan struct{}) {
	defer close(done)
	lease := a.Instance.Lease()
	t := time.NewTicker(lease / 5)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lease/2)
		a.beat(ctx)
		cancel()
	}
}

// beat is one heartbeat: renew, then recover.
func (a *App) beat(ctx context.Context) {
	err := a.Instance.Renew(ctx)
	switch {
	case errors.Is(err, instance.ErrLeaseLost):
		a.Log.Error("instance lease ran out before it was renewed (not renewed within database.instance_lease: the database unreachable or this process stalled); ending the sessions another instance sealed",
			"instance", a.Instance.ID())
		a.fence(ctx)
	case err != nil:
		a.Log.Warn("instance heartbeat failed; retrying", "instance", a.Instance.ID(), "err", err)
		return
	}
	cutoff, err := a.Instance.DBNow(ctx)
	if err == nil {
		err = a.recoverDead(ctx, cutoff)
	}
	if err != nil {
		a.Log.Warn("recovery pass failed; retrying at the next heartbeat", "instance", a.Instance.ID(), "err", err)
		return
	}
	if time.Since(a.lastPrune) >= pruneEvery {
		a.pruneInstances(ctx)
	}
}

// fence ends the live sessions whose rows another instance took over while
// this one's lease had run out: their recordings are sealed, so they must
// not go on unrecorded.
func (a *App) fence(ctx context.Context) {
	for _, id := range a.Recs.LiveSessionIDs() {
		owner, open, err := a.Sessions.Owner(ctx, id)
		if err != nil || (owner == a.Instance.ID() && open) {
			continue
		}
		a.Gateway.Terminate(id, "this gateway lost contact with the database and another instance sealed the session")
	}
}

// sessionsElsewhere counts a user's open sessions on the other live
// instances (max_sessions across a cluster); nil on SQLite, where one
// process is the whole installation.
func (a *App) sessionsElsewhere() func(ctx context.Context, user string) (int, error) {
	if a.Instance == nil || !a.Env.DB.IsPostgres() {
		return nil
	}
	return func(ctx context.Context, user string) (int, error) {
		cutoff, err := a.Instance.DBNow(ctx)
		if err != nil {
			return 0, err
		}
		return a.Sessions.OpenElsewhere(ctx, user, cutoff)
	}
}
