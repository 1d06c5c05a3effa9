package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/policy"
)

func init() {
	register(command{name: "policy", summary: "explain a policy decision (policy explain --user U --target T --login L)", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("policy", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"explain": runPolicyExplain,
		})
	}})
}

// runPolicyExplain answers "may U reach T as L?" from the configuration
// alone, with the same engine and reason the gateway uses. Exit status 0
// means allowed, 1 denied.
func runPolicyExplain(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("policy explain", stderr)
	user := fs.String("user", "", "Gatehouse user name")
	groups := fs.String("groups", "", "comma-separated OIDC groups of the user")
	tgt := fs.String("target", "", "target name (or docker:<container>)")
	login := fs.String("login", "", "login on the target")
	cmd := fs.String("command", "", "exec command (empty: interactive shell)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *user == "" || *tgt == "" || *login == "" {
		fmt.Fprintln(stderr, "usage: gatehouse policy explain --user U --target T --login L [--groups G1,G2] [--command C]")
		return errUsage
	}
	cfg, err := loadPolicyConfig(*cfgPath)
	if err != nil {
		return err
	}
	pt, err := policyTarget(cfg, *tgt)
	if err != nil {
		return err
	}
	var gs []string
	if *groups != "" {
		gs = strings.Split(*groups, ",")
	}
	e := policy.New(cfg)
	d := e.Check(policy.Request{User: *user, Groups: gs, Target: pt, Login: *login, Command: *cmd})
	verdict := "DENY"
	if d.Allowed {
		verdict = "ALLOW"
	}
	fmt.Fprintf(stdout, "%s: %s\n", verdict, d.Reason)
	fmt.Fprintf(stdout, "roles of %s: %s\n", *user, strings.Join(e.Roles(*user, gs), ", "))
	explainCommand(stdout, e, d, policy.Request{User: *user, Groups: gs, Target: pt, Login: *login, Command: *cmd})
	if d.Allowed {
		o := d.Options
		fmt.Fprintf(stdout, "options: sftp=%v port_forwarding=%v max_session_ttl=%s idle_timeout=%s session_mfa=%v\n",
			o.SFTP, o.PortForwarding, o.MaxSessionTTL, o.IdleTimeout, o.RequireSessionMFA)
		return nil
	}
	return exitError{1}
}

// loadPolicyConfig loads the configuration and refuses rules policy cannot use.
func loadPolicyConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(config.PathFromEnv(path))
	if err != nil {
		return nil, err
	}
	return cfg, policy.Validate(cfg)
}

// policyTarget resolves a configured target name (or docker:<container>).
func policyTarget(cfg *config.Config, name string) (policy.Target, error) {
	if t, ok := cfg.Target(name); ok {
		return policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}, nil
	}
	if strings.HasPrefix(name, "docker:") {
		return policy.Target{Name: name, Kind: "docker"}, nil
	}
	return policy.Target{}, fmt.Errorf("unknown target %q", name)
}

// explainCommand prints how an exec command was read and judged: its
// arguments (or why it was not parsed), the rule that matched and the
// force-command the target would get, or the rules it was held against.
func explainCommand(w io.Writer, e *policy.Engine, d policy.Decision, req policy.Request) {
	if req.Command == "" {
		fmt.Fprintln(w, "command: none (interactive shell or subsystem)")
	} else if argv, err := policy.Tokenize(req.Command); err != nil {
		fmt.Fprintf(w, "command: %q not parsed: %s\n", req.Command, strings.TrimPrefix(err.Error(), "policy: "))
	} else {
		fmt.Fprintf(w, "command: %q parsed as argv %q\n", req.Command, argv)
	}
	switch {
	case d.Command != nil:
		fmt.Fprintf(w, "matched: rule %q of role %s\nforce-command: %s\n", d.Command.Rule, d.Command.Role, d.Command.ForceCommand)
		return
	case d.Allowed:
		fmt.Fprintln(w, "commands: not restricted (a role allowing this has no command rules); no force-command")
		return
	}
	for _, rc := range e.CommandRules(req.User, req.Groups, req.Target, req.Login) {
		if len(rc.Rules) > 0 {
			fmt.Fprintf(w, "rules of role %s: %q\n", rc.Role, rc.Rules)
		}
	}
}
