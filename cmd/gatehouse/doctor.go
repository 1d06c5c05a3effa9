package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

func init() {
	register(command{name: "doctor", summary: "check the configuration and, with --target, that a target's sshd is set up for Gatehouse", run: runDoctor})
}

// level of a finding. FAIL makes doctor exit 1.
type level string

const (
	lvOK   level = "OK"
	lvWarn level = "WARN"
	lvFail level = "FAIL"
)

// finding is one line of the doctor's report: what was found and, unless it
// is fine, the fix.
type finding struct {
	lv      level
	what    string
	fix     string
	subject string // "config" or "target NAME"
}

func (f finding) String() string {
	s := fmt.Sprintf("%-4s %s: %s", f.lv, f.subject, f.what)
	if f.fix != "" {
		s += " — fix: " + f.fix
	}
	return s
}

// report collects findings for one subject.
type report struct {
	subject  string
	findings []finding
}

func (r *report) add(lv level, what, fix string) {
	r.findings = append(r.findings, finding{lv: lv, what: what, fix: fix, subject: r.subject})
}

func (r *report) ok(format string, a ...any) { r.add(lvOK, fmt.Sprintf(format, a...), "") }

func runDoctor(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("doctor", stderr)
	target := fs.String("target", "", "also connect to this target and check its sshd")
	login := fs.String("login", "root", "the account to probe on the target (root also lets doctor read sshd's effective configuration)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if !loginNameRE.MatchString(*login) {
		return fmt.Errorf("--login %q is not a valid account name", *login)
	}
	env, err := openEnv(*cfgPath)
	if err != nil {
		return err
	}
	defer env.Close()
	findings := checkConfig(env.cfg)
	if *target != "" {
		t, ok := env.cfg.Target(*target)
		if !ok {
			return fmt.Errorf("no target %q in %s", *target, env.cfg.Path())
		}
		authority, closeCA, err := app.LoadAuthority(context.Background(), &app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets})
		if err != nil {
			return err
		}
		defer closeCA()
		tf := probeTarget(context.Background(), t, *login, authority, env.cfg.SSH.TargetDialTimeout)
		findings = append(findings, tf...)
		auditDoctor(env, t.Name, tf)
	}
	fails := 0
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
		if f.lv == lvFail {
			fails++
		}
	}
	if fails > 0 {
		fmt.Fprintf(stdout, "%d problem(s) found\n", fails)
		return exitError{1}
	}
	return nil
}

// loginNameRE is the account names doctor probes with (it is used in a
// command run on the target).
var loginNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// auditDoctor records that doctor probed a target (it minted certificates).
func auditDoctor(env *appEnv, target string, fs []finding) {
	log, err := app.OpenAudit(&app.Env{Config: env.cfg, DB: env.db, Secrets: env.secrets}, nil)
	if err != nil {
		return
	}
	defer log.Close()
	fails := 0
	for _, f := range fs {
		if f.lv == lvFail {
			fails++
		}
	}
	log.Append(context.Background(), audit.Event{Type: audit.EventAdminChange, User: osUser(), Target: target,
		Reason: "gatehouse doctor probed the target", Details: map[string]any{"findings": int64(len(fs)), "failures": int64(fails)}})
}

// checkConfig reports on the configuration itself.
func checkConfig(cfg *config.Config) []finding {
	r := &report{subject: "config"}
	r.ok("%s parses and validates", cfg.Path())
	if app.MasterKeyBesideData(cfg) {
		r.add(lvWarn, "the master key is a file in data_dir, next to the database it protects",
			"move it out (master_key_file: /etc/gatehouse/master.key or a systemd credential) or set GATEHOUSE_MASTER_KEY; see docs/deploy.md")
	} else {
		r.ok("the master key is kept outside data_dir")
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		r.add(lvFail, fmt.Sprintf("data_dir %s is accessible to others (mode %v)", cfg.DataDir, fi.Mode().Perm()), "chmod 700 "+cfg.DataDir)
	}
	if cfg.Metrics.Listen == "" {
		r.add(lvWarn, "metrics.listen is not set: no /metrics, /readyz or container HEALTHCHECK", `set metrics: {listen: "127.0.0.1:9464"}`)
	}
	if cfg.Web.InsecureHTTP && !loopbackListen(cfg.Web.Listen) {
		r.add(lvFail, fmt.Sprintf("web.insecure_http serves plain HTTP on %s, not loopback", cfg.Web.Listen),
			"bind web.listen to 127.0.0.1 behind a TLS proxy, or remove insecure_http")
	}
	if cfg.OIDC.Issuer == "" {
		r.add(lvWarn, "no oidc.issuer: users can only use admin-issued certificates", "configure oidc (docs/identity.md)")
	}
	for _, a := range cfg.Alerts {
		if b, err := os.ReadFile(a.SecretFile); err != nil || len(strings.TrimSpace(string(b))) < 16 {
			r.add(lvFail, fmt.Sprintf("alert %s: secret_file %s is unreadable or shorter than 16 bytes", a.Name, a.SecretFile),
				"openssl rand -hex 32 > "+a.SecretFile+"; chmod 600 "+a.SecretFile)
		}
	}
	return r.findings
}

func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// probeTimeout bounds each connection doctor makes to a target.
func probeTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return 10 * time.Second
	}
	return d
}
