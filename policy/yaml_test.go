package policy

import (
	"testing"

	"github.com/gatehouse/gatehouse/internal/config"
)

// Tests write their rules in the YAML an operator writes; these helpers
// translate a parsed configuration to a Policy the way internal/app does
// (policyOf there), so the tests also catch a field the translation drops:
// the struct conversions below stop compiling when the two types differ.

// parsePolicy parses yaml as a configuration file and returns its rules.
func parsePolicy(yaml string) (Policy, error) {
	c, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		return Policy{}, err
	}
	return fromConfig(c), nil
}

func mustParse(tb testing.TB, yaml string) Policy {
	tb.Helper()
	p, err := parsePolicy(yaml)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func fromConfig(c *config.Config) Policy {
	var p Policy
	for _, r := range c.Roles {
		p.Roles = append(p.Roles, Role{Name: r.Name, Allow: rulesOf(r.Allow), Deny: rulesOf(r.Deny), Warn: rulesOf(r.Warn),
			Options: RoleOptions(r.Options)})
	}
	for _, b := range c.Bindings {
		p.Bindings = append(p.Bindings, Binding(b))
	}
	return p
}

func rulesOf(r config.Rules) Rules {
	return Rules{Targets: Selector(r.Targets), Logins: r.Logins, ContainerLabels: r.ContainerLabels, Commands: r.Commands}
}
