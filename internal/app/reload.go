package app

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/gateway"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// policyDiff is what a reload changes, by name: roles, bindings (keyed
// user:NAME or group:NAME) and targets added, removed or changed.
type policyDiff map[string][]string

func (d policyDiff) empty() bool { return len(d) == 0 }

// String is the one-line summary in the audit reason and the log.
func (d policyDiff) String() string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, strings.ReplaceAll(k, "_", " ")+": "+strings.Join(d[k], ", "))
	}
	return strings.Join(parts, "; ")
}

// diffByName adds kind_added/_removed/_changed entries to d.
func diffByName[T any](d policyDiff, kind string, old, cur map[string]T) {
	for name, v := range cur {
		o, ok := old[name]
		switch {
		case !ok:
			d[kind+"_added"] = append(d[kind+"_added"], name)
		case !reflect.DeepEqual(o, v):
			d[kind+"_changed"] = append(d[kind+"_changed"], name)
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			d[kind+"_removed"] = append(d[kind+"_removed"], name)
		}
	}
	for k := range d {
		sort.Strings(d[k])
	}
}

func diffPolicy(old, cur *config.Config) policyDiff {
	d := policyDiff{}
	roles := func(c *config.Config) map[string]config.Role {
		m := map[string]config.Role{}
		for _, r := range c.Roles {
			m[r.Name] = r
		}
		return m
	}
	bindings := func(c *config.Config) map[string][]string {
		m := map[string][]string{}
		for _, b := range c.Bindings {
			k := "user:" + b.User
			if b.Group != "" {
				k = "group:" + b.Group
			}
			m[k] = append(m[k], b.Roles...)
		}
		for k := range m {
			sort.Strings(m[k])
		}
		return m
	}
	targets := func(c *config.Config) map[string]config.Target {
		m := map[string]config.Target{}
		for _, t := range c.Targets {
			m[t.Name] = t
		}
		return m
	}
	diffByName(d, "roles", roles(old), roles(cur))
	diffByName(d, "bindings", bindings(old), bindings(cur))
	diffByName(d, "targets", targets(old), targets(cur))
	return d
}

// Reload reads the configuration file again and, if it is valid, makes its
// roles, bindings and targets those of every later decision (live sessions
// keep theirs). Other settings need a restart. A file that fails to load
// or validate changes nothing: the previous policy stays, and why is logged
// and audited. trigger says what asked (SIGHUP, a file change).
func (a *App) Reload(trigger string) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	ctx := context.Background()
	cfg, err := config.Load(a.Config.Path())
	var rules policy.Policy
	var targets []gateway.Target
	if err == nil {
		rules, targets, err = resolve(cfg)
	}
	if err != nil {
		return a.refuseReload(ctx, trigger, err)
	}
	d := diffPolicy(a.active, cfg)
	if d.empty() {
		a.Log.Info("configuration reloaded: roles, bindings and targets unchanged", "trigger", trigger)
		return nil
	}
	if err := a.Gateway.SetTargets(targets); err != nil {
		return a.refuseReload(ctx, trigger, err)
	}
	a.Policy.Replace(rules)
	if a.Web != nil {
		a.Web.ApplyPolicy(cfg)
	}
	a.active = cfg
	a.Log.Info("configuration reloaded", "trigger", trigger, "changes", d.String())
	details := map[string]any{"trigger": trigger}
	for k, v := range d {
		details[k] = strings.Join(v, ",")
	}
	a.auditReload(ctx, audit.Event{Type: audit.EventAdminChange,
		Reason: fmt.Sprintf("policy reloaded (%s): %s", trigger, d), Details: details})
	return nil
}

// refuseReload logs and audits a refused reload and returns err: the
// previous policy and targets stay.
func (a *App) refuseReload(ctx context.Context, trigger string, err error) error {
	a.Log.Error("configuration reload refused; the previous policy stays", "trigger", trigger, "file", a.Config.Path(), "err", err)
	a.auditReload(ctx, audit.Event{Type: audit.EventAdminChange,
		Reason:  fmt.Sprintf("policy reload (%s) refused, the previous policy stays: %v", trigger, err),
		Details: map[string]any{"trigger": trigger, "refused": true}})
	return err
}

func (a *App) auditReload(ctx context.Context, ev audit.Event) {
	ev.User = "gatehouse"
	if err := a.auditor().Append(ctx, ev); err != nil {
		a.Log.Error("audit append failed", "type", ev.Type, "err", err)
	}
}

// watchConfig reloads when the configuration file's modification time
// changes, checking every interval, until quit closes.
func (a *App) watchConfig(interval time.Duration, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	mtime := func() time.Time {
		fi, err := os.Stat(a.Config.Path())
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	last := mtime()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		if m := mtime(); !m.Equal(last) && !m.IsZero() {
			last = m
			a.Reload("file changed")
		}
	}
}
