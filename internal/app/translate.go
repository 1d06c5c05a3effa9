package app

import (
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/gateway"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/target"
	"github.com/gatehouse/gatehouse/policy"
)

// This file is the one place the configuration file's types become the
// domain's: policy and gateway never import internal/config
// (TestDomainDoesNotImportConfig).

// resolve translates cfg's rules and targets, refusing rules policy cannot
// use and host keys that do not parse.
func resolve(cfg *config.Config) (policy.Policy, []gateway.Target, error) {
	rules := PolicyOf(cfg)
	if err := policy.Validate(rules); err != nil {
		return policy.Policy{}, nil, err
	}
	targets, err := TargetsOf(cfg)
	return rules, targets, err
}

// PolicyOf translates cfg's roles and bindings into policy's rules.
func PolicyOf(cfg *config.Config) policy.Policy {
	var p policy.Policy
	for _, r := range cfg.Roles {
		p.Roles = append(p.Roles, policy.Role{Name: r.Name, Allow: rulesOf(r.Allow), Deny: rulesOf(r.Deny),
			Warn: rulesOf(r.Warn), Options: policy.RoleOptions(r.Options)})
	}
	for _, b := range cfg.Bindings {
		p.Bindings = append(p.Bindings, policy.Binding(b))
	}
	return p
}

// rulesOf translates one allow, deny or warn section. (The struct
// conversions stop compiling when a field is added on one side only.)
func rulesOf(r config.Rules) policy.Rules {
	return policy.Rules{Targets: policy.Selector(r.Targets), Logins: r.Logins, ContainerLabels: r.ContainerLabels,
		Commands: r.Commands}
}

// PolicyTarget is what policy knows about a configured target.
func PolicyTarget(t config.Target) policy.Target {
	return policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
}

// TargetsOf resolves cfg's targets for the gateway. Host keys are parsed
// here, once per load or reload; a key that does not parse refuses the
// configuration with one line naming the target and the key.
func TargetsOf(cfg *config.Config) ([]gateway.Target, error) {
	out := make([]gateway.Target, 0, len(cfg.Targets))
	for _, t := range cfg.Targets {
		gt := gateway.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels, Address: t.Address, Container: t.Container,
			Docker: target.DockerOptions{Host: t.DockerHost, TLSCA: t.DockerTLS.CAFile, TLSCert: t.DockerTLS.CertFile,
				TLSKey: t.DockerTLS.KeyFile, Shell: t.Shell}}
		var err error
		if gt.HostKey, err = parseKey(t.HostKey); err != nil {
			return nil, fmt.Errorf("app: target %q: host_key: %v", t.Name, err)
		}
		if gt.HostCA, err = parseKey(t.HostCA); err != nil {
			return nil, fmt.Errorf("app: target %q: host_ca: %v", t.Name, err)
		}
		out = append(out, gt)
	}
	return out, nil
}

// parseKey parses a host_key or host_ca line; empty means none.
func parseKey(line string) (ssh.PublicKey, error) {
	if line == "" {
		return nil, nil
	}
	return config.ParseAuthorizedKey(line)
}
