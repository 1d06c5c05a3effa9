package gateway

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/policy"
)

// Target is one configured target, resolved once when the configuration is
// loaded: its host keys are parsed keys, not text, so a dial never parses
// and never skips a key it cannot read.
type Target struct {
	// Name is how users address the target (login@name@gateway).
	Name string
	// Kind is "ssh" or "docker".
	Kind string
	// Labels are matched by role selectors.
	Labels map[string]string
	// Address is host:port of the target's sshd (kind ssh).
	Address string
	// HostKey is the pinned host key; nil means none is pinned.
	HostKey ssh.PublicKey
	// HostCA is the CA whose host certificates are trusted; nil means none.
	// An ssh target has HostKey, HostCA or both: unknown keys are refused.
	HostCA ssh.PublicKey
	// Docker reaches the Docker Engine (kind docker).
	Docker target.DockerOptions
	// Container is the container of a named docker target; empty on a
	// docker target means a Docker host whose containers are addressed as
	// docker:<container>.
	Container string
}

// Policy is what policy knows about t.
func (t Target) Policy() policy.Target {
	return policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
}

// check reports the first thing that makes t unusable, naming t.
func (t Target) check() error {
	switch {
	case t.Name == "":
		return errors.New("gateway: a target has no name")
	case t.Kind == "docker":
		return nil
	case t.Kind != "ssh":
		return fmt.Errorf("gateway: target %q: kind %q: want ssh or docker", t.Name, t.Kind)
	case t.Address == "":
		return fmt.Errorf("gateway: target %q has no address", t.Name)
	case t.HostKey == nil && t.HostCA == nil:
		return fmt.Errorf("gateway: target %q has neither a host key nor a host CA: unknown host keys are refused", t.Name)
	}
	return nil
}

// registry is the resolved targets in force; a reload replaces them at once.
type registry struct {
	// mu protects the following.
	mu     sync.RWMutex
	byName map[string]Target
	list   []Target // configuration order
}

// set replaces the targets, or changes nothing and says why.
func (r *registry) set(targets []Target) error {
	m := make(map[string]Target, len(targets))
	for _, t := range targets {
		if err := t.check(); err != nil {
			return err
		}
		if _, dup := m[t.Name]; dup {
			return fmt.Errorf("gateway: target %q is defined twice", t.Name)
		}
		m[t.Name] = t
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName, r.list = m, append([]Target(nil), targets...)
	return nil
}

func (r *registry) get(name string) (Target, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.byName[name]
	return t, ok
}

func (r *registry) all() []Target {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.list
}
