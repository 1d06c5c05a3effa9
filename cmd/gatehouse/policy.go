package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/usererr"
	"github.com/gatehouse/gatehouse/policy"
)

func init() {
	register(command{name: "policy", summary: "explain a decision, test expected decisions, list who can reach what (policy explain|test|access)", run: func(args []string, stdout, stderr io.Writer) error {
		return subcommand("policy", args, stdout, stderr, map[string]func([]string, io.Writer, io.Writer) error{
			"explain": runPolicyExplain,
			"test":    runPolicyTest,
			"access":  runPolicyAccess,
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
	e := policy.New(app.PolicyOf(cfg))
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
	return cfg, policy.Validate(app.PolicyOf(cfg))
}

// policyTarget resolves a configured target name (or docker:<container>).
func policyTarget(cfg *config.Config, name string) (policy.Target, error) {
	if t, ok := cfg.Target(name); ok {
		return app.PolicyTarget(t), nil
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
		why := err.Error()
		if se := (*policy.SyntaxError)(nil); errors.As(err, &se) {
			why = se.Reason()
		}
		fmt.Fprintf(w, "command: %q not parsed: %s\n", req.Command, why)
	} else {
		fmt.Fprintf(w, "command: %q parsed as argv %q\n", req.Command, argv)
	}
	for _, warn := range d.Warnings {
		fmt.Fprintf(w, "warn: %s\n", warn)
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

// parseWithFile parses flags given before or after one positional FILE.
func parseWithFile(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", errUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return "", nil
	}
	if err := fs.Parse(rest[1:]); err != nil || fs.NArg() > 0 {
		return "", errUsage
	}
	return rest[0], nil
}

// runPolicyTest checks a file of expected decisions against the
// configuration, for a CI job in the operator's repository: one line per
// expectation, then a count. Exit status 1 if any decision differs.
func runPolicyTest(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("policy test", stderr)
	file, err := parseWithFile(fs, args)
	if err != nil || file == "" {
		fmt.Fprintln(stderr, "usage: gatehouse policy test FILE   (lines: USER[GROUP,...] TARGET LOGIN [COMMAND] -> allow|deny)")
		return errUsage
	}
	cfg, err := loadPolicyConfig(*cfgPath)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	exps, err := policy.ParseExpectations(f)
	if err != nil {
		msg, _ := usererr.Message(err)
		return fmt.Errorf("%s: %s", file, msg)
	}
	e := policy.New(app.PolicyOf(cfg))
	failed := 0
	for _, x := range exps {
		if !checkExpectation(stdout, cfg, e, x) {
			failed++
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(exps)-failed, failed)
	if failed > 0 {
		return exitError{1}
	}
	return nil
}

// checkExpectation prints one result line and reports whether it passed.
func checkExpectation(w io.Writer, cfg *config.Config, e *policy.Engine, x policy.Expectation) bool {
	t, err := policyTarget(cfg, x.Request.Target.Name)
	if err != nil {
		fmt.Fprintf(w, "FAIL line %d: %s: %v\n", x.Line, x.Text, err)
		return false
	}
	req := x.Request
	req.Target = t
	d := e.Check(req)
	if d.Allowed == x.Allow {
		fmt.Fprintf(w, "ok   line %d: %s (%s)\n", x.Line, x.Text, d.Reason)
		return true
	}
	got := "deny"
	if d.Allowed {
		got = "allow"
	}
	fmt.Fprintf(w, "FAIL line %d: %s: got %s (%s)\n", x.Line, x.Text, got, d.Reason)
	return false
}

// runPolicyAccess prints who can reach what as which login via which role,
// from the configuration alone: the report an auditor asks for.
func runPolicyAccess(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("policy access", stderr)
	format := fs.String("format", "csv", "output format: csv")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return errUsage
	}
	if *format != "csv" {
		fmt.Fprintf(stderr, "gatehouse policy access: unknown format %q (want csv)\n", *format)
		return errUsage
	}
	cfg, err := loadPolicyConfig(*cfgPath)
	if err != nil {
		return err
	}
	var targets []policy.Target
	for _, t := range cfg.Targets {
		targets = append(targets, app.PolicyTarget(t))
	}
	w := csv.NewWriter(stdout)
	w.Write([]string{"subject", "target", "login", "role", "commands", "options", "except_logins", "denied_commands"})
	for _, r := range policy.New(app.PolicyOf(cfg)).Access(targets) {
		cmds := ""
		if len(r.Commands) > 0 {
			cmds = fmt.Sprintf("%q", r.Commands)
		}
		denied := ""
		if len(r.DeniedCommands) > 0 {
			denied = fmt.Sprintf("%q", r.DeniedCommands)
		}
		w.Write([]string{r.Subject, r.Target, r.Login, r.Role, cmds, strings.Join(r.Options, " "), strings.Join(r.ExceptLogins, " "), denied})
	}
	w.Flush()
	return w.Error()
}
