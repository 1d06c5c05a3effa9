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
	cfg, err := config.Load(config.PathFromEnv(*cfgPath))
	if err != nil {
		return err
	}
	pt := policy.Target{Name: *tgt, Kind: "docker"}
	if t, ok := cfg.Target(*tgt); ok {
		pt = policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
	} else if !strings.HasPrefix(*tgt, "docker:") {
		return fmt.Errorf("unknown target %q", *tgt)
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
	if d.Allowed {
		o := d.Options
		fmt.Fprintf(stdout, "options: sftp=%v port_forwarding=%v max_session_ttl=%s idle_timeout=%s session_mfa=%v\n",
			o.SFTP, o.PortForwarding, o.MaxSessionTTL, o.IdleTimeout, o.RequireSessionMFA)
		return nil
	}
	return exitError{1}
}
