// Command sshbench measures Gatehouse side by side with OpenSSH on loopback,
// in one run, and prints a table of ratios:
//
//   - session setup (median of -n runs of `ssh HOST true`),
//   - bulk throughput (exec output of -bytes, discarded by the client),
//   - keystroke echo round trip (p50/p99 through `ssh -tt` to `cat`),
//   - gateway memory per idle interactive session (-idle sessions).
//
// Modes: direct OpenSSH to the target; OpenSSH ProxyJump through a plain
// sshd; Gatehouse direct (login@target@gw); Gatehouse as ProxyJump. It needs
// root (it starts sshd), /usr/sbin/sshd and the gatehouse binary (-gatehouse).
// See bench/run.sh and docs/performance.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/creack/pty"

	"github.com/gatehouse/gatehouse/bench"
)

var (
	flagN           = flag.Int("n", 30, "session setups per mode (median reported)")
	flagBytes       = flag.Int64("bytes", 1<<30, "bytes of exec output per throughput run")
	flagEcho        = flag.Int("echo", 300, "keystrokes per echo measurement")
	flagIdle        = flag.Int("idle", 2000, "idle interactive sessions for the memory measurement (0 skips)")
	flagRateTime    = flag.Duration("rate-time", 10*time.Second, "how long to open sessions for the session rate (0 skips)")
	flagRateClients = flag.Int("rate-clients", 16, "parallel clients for the session rate")
	flagSearch      = flag.Int("search", 100_000, "sessions for the command search measurement (0 skips)")
	flagFidelity    = flag.Bool("fidelity", true, "run the command fidelity corpus")
	flagGWEnv       = flag.String("gw-env", "", "extra environment for the gateway process, space separated (e.g. GOGC=50 GOMEMLIMIT=256MiB)")
	flagLive        = flag.Int("live", 200, "commands typed for the Enter → audit event delay; with -idle, also memory per idle session that typed (0 skips)")
	flagOnly        = flag.String("only", "", "run only this part: fidelity | idle | rate | live | bulk | echo | search | setup")
	flagSetupModes  = flag.String("setup-modes", "", "with -only setup: comma-separated hosts (directkex,gwdirect,direct,gwjump; default all)")
	flagSetupPhases = flag.Bool("setup-phases", false, "with -only setup: run ssh -vvv and print the median time of each step (key exchange, auth, channel, exec) per mode")
	flagHold        = flag.Bool("hold", false, "with -only setup: keep the targets and the gateway running afterwards until SIGINT (to trace a session by hand)")
	flagBulkModes   = flag.String("bulk-modes", "", "with -only bulk or echo: comma-separated modes (direct,viajump,gwdirect,gwjump; default all)")
	flagRounds      = flag.Int("rounds", 3, "bulk and echo rounds, each running every mode once (bulk: median round; echo: all keystrokes)")
	flagGH          = flag.String("gatehouse", "", "path to the gatehouse binary (default: build it)")
	flagCipher      = flag.String("cipher", "chacha20-poly1305@openssh.com", "client cipher for every mode")
	flagKeep        = flag.Bool("keep", false, "keep the temporary directory")
	flagSkipBulk    = flag.Bool("skip-bulk", false, "skip the throughput runs")
	flagGWProfile   = flag.String("gw-profile", "", "run the gateway in-process in a child of this program and write a CPU and heap profile of each measured part into this directory")
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == serveProfileArg {
		if err := serveProfile(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "sshbench serve-profile:", err)
			os.Exit(1)
		}
		return
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sshbench:", err)
		os.Exit(1)
	}
}

type env struct {
	dir         string
	gh          string
	target      *sshd           // the host everyone reaches
	goTarget    *bench.GoTarget // a cheap in-process target for the session rate and idle sessions
	jump        *sshd           // a plain OpenSSH jump host
	gwAddr      string
	metricsAddr string // the gateway's /metrics (Go runtime memory)
	gwProc      *exec.Cmd
	clientCfg   string
	hostCALine  string
	searchCPU   string // the command search's CPU per query, for the report
}

func run() error {
	if os.Geteuid() != 0 {
		return errors.New("run as root (it starts sshd)")
	}
	if err := raiseFileLimit(); err != nil {
		return fmt.Errorf("raise the open file limit: %w", err)
	}
	dir, err := os.MkdirTemp("", "sshbench-")
	if err != nil {
		return err
	}
	if !*flagKeep {
		defer os.RemoveAll(dir)
	}
	e := &env{dir: dir}
	if *flagOnly == "search" {
		// The database query alone: no sshd, no gateway.
		sel, common, err := e.commandSearch(*flagSearch)
		if err != nil {
			return err
		}
		fmt.Printf("\"command contains\" over %d sessions: selective %.1f ms, every session matches %.1f ms (median of 20 wall times; %s)\n",
			*flagSearch, ms(sel), ms(common), e.searchCPU)
		return nil
	}
	if err := e.setup(); err != nil {
		return err
	}
	defer e.teardown()
	switch *flagOnly {
	case "setup":
		return e.setupOnly()
	case "rate":
		rate, cpu, share, err := e.sessionRate()
		if err != nil {
			return err
		}
		fmt.Printf("new recorded sessions per second: %.0f/s, gateway CPU %.1f ms per session (%.0f%% of one core)\n", rate, float64(cpu)/1e6, share*100)
		return nil
	case "fidelity":
		return e.printFidelity()
	case "live":
		lr, err := e.liveCommands(*flagLive, *flagIdle)
		if err != nil {
			return err
		}
		fmt.Printf("| figure | Gatehouse | OpenSSH | ratio | goal | verdict |\n|---|---|---|---|---|---|\n")
		lr.print()
		return nil
	case "bulk", "echo":
		bulk := *flagOnly == "bulk"
		res := map[string]*result{}
		modes := benchModes[:0:0]
		for _, m := range benchModes {
			if *flagBulkModes == "" || strings.Contains(","+*flagBulkModes+",", ","+m.host+",") {
				modes = append(modes, m)
			}
			res[m.host] = &result{}
		}
		if err := e.bulkAndEcho(modes, res, bulk, !bulk); err != nil {
			return err
		}
		j := res["viajump"]
		for _, m := range modes {
			if bulk {
				fmt.Printf("bulk %-20s %6.0f MB/s  %.2f× -J  (rounds: %s)\n", m.name, res[m.host].mbps, ratio(res[m.host].mbps, j.mbps), res[m.host].rounds)
			} else {
				r := res[m.host]
				fmt.Printf("echo %-20s p50 %4d µs p99 %5d µs  %.2f× / %.2f× -J\n", m.name, r.p50.Microseconds(), r.p99.Microseconds(),
					ratio(float64(r.p50), float64(j.p50)), ratio(float64(r.p99), float64(j.p99)))
			}
		}
		return nil
	case "idle":
		r, err := e.idleMemory(*flagIdle)
		if err != nil {
			return err
		}
		fmt.Printf("gateway memory per idle interactive recorded session at %d (gateway env %q): heap in use + stacks %.1f KiB (heap %.1f, live %.1f, stacks %.1f, %.1f goroutines); RSS %.1f KiB\n",
			*flagIdle, *flagGWEnv, r.heapPlusStacks/1024, r.heapInuse/1024, r.heapLive/1024, r.stack/1024, r.goroutines, r.rss/1024)
		return nil
	}
	modes := benchModes
	res := map[string]*result{}
	for _, m := range modes {
		r := &result{}
		res[m.host] = r
		if r.setup, err = e.setupTime(m.host); err != nil {
			return fmt.Errorf("%s setup: %w", m.name, err)
		}
	}
	// Bulk and echo run in -rounds rounds, each round every mode once, so a
	// swing in the machine's load hits every mode alike; bulk reports the
	// median round, echo the percentiles of all rounds' keystrokes.
	if err := e.bulkAndEcho(modes, res, !*flagSkipBulk, true); err != nil {
		return err
	}
	for _, m := range modes {
		r := res[m.host]
		fmt.Fprintf(os.Stderr, "%-20s setup %v  %.0f MB/s  echo p50 %v p99 %v\n", m.name, r.setup, r.mbps, r.p50, r.p99)
	}
	if res["directkex"] == nil {
		res["directkex"] = &result{}
	}
	if res["directkex"].setup, err = e.setupTime("directkex"); err != nil {
		return fmt.Errorf("OpenSSH direct (curve25519) setup: %w", err)
	}
	for _, h := range []string{"direct", "directkex", "gwdirect"} {
		fmt.Fprintf(os.Stderr, "key exchange %-10s %s\n", h, e.kex(h))
	}
	// The fidelity corpus first, on a quiet gateway (closing 2,000 idle
	// sessions below keeps it busy sealing recordings for a while).
	var fid *fidelityResult
	if *flagFidelity {
		r, err := e.fidelityResult()
		if err != nil {
			return err
		}
		fid = &r
	}
	x := extras{}
	// The command search too, before the sessions below: closing thousands
	// of them keeps the gateway sealing recordings for a while, and a query
	// timed beside that measures the machine's load, not the query.
	if *flagSearch > 0 {
		if x.searchSel, x.searchCommon, err = e.commandSearch(*flagSearch); err != nil {
			return fmt.Errorf("command search: %w", err)
		}
	}
	if *flagRateTime > 0 {
		if x.rate, x.cpuPerSession, x.cpuShare, err = e.sessionRate(); err != nil {
			return fmt.Errorf("session rate: %w", err)
		}
	}
	if *flagIdle > 0 {
		if x.idle, err = e.idleMemory(*flagIdle); err != nil {
			return fmt.Errorf("idle memory: %w", err)
		}
	}
	var live *liveResult
	if *flagLive > 0 {
		lr, err := e.liveCommands(*flagLive, *flagIdle)
		if err != nil {
			return fmt.Errorf("live commands: %w", err)
		}
		live = &lr
	}
	d, j := res["direct"], res["viajump"]
	fmt.Printf("| mode | setup (median of %d) | × direct | × ProxyJump | throughput %d MB | × direct | × ProxyJump | echo p50 | echo p99 | p50 × ProxyJump |\n", *flagN, *flagBytes/1e6)
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range modes {
		r := res[m.host]
		fmt.Printf("| %s | %.1f ms | %.2f | %.2f | %.0f MB/s | %.2f | %.2f | %d µs | %d µs | %.2f |\n", m.name,
			ms(r.setup), ms(r.setup)/ms(d.setup), ms(r.setup)/ms(j.setup), r.mbps, ratio(r.mbps, d.mbps), ratio(r.mbps, j.mbps),
			r.p50.Microseconds(), r.p99.Microseconds(), float64(r.p50)/float64(j.p50))
	}
	fmt.Printf("| OpenSSH direct, curve25519 | %.1f ms | %.2f | %.2f | | | | | | |\n", ms(res["directkex"].setup),
		ms(res["directkex"].setup)/ms(d.setup), ms(res["directkex"].setup)/ms(j.setup))
	fmt.Println()
	printGoals(res["gwdirect"], res["gwjump"], j, res["directkex"], x)
	if fid != nil {
		fid.print()
	}
	if live != nil {
		live.print()
	}
	return nil
}

type fidelityResult struct{ exact, total, spurious, leaked int }

func (e *env) fidelityResult() (fidelityResult, error) {
	var r fidelityResult
	var err error
	r.exact, r.total, r.spurious, r.leaked, err = e.fidelity()
	if err != nil {
		return r, fmt.Errorf("fidelity: %w", err)
	}
	return r, nil
}

func (r fidelityResult) print() {
	pct := 100 * float64(r.exact) / float64(r.total)
	ok := "met"
	if pct < 98 || r.leaked > 0 {
		ok = "**not met**"
	}
	fmt.Printf("| command fidelity (%d cases of real typing into bash) | %.1f%% exact (%d of %d), %d spurious, %d secrets captured | | | ≥ 98%%, 0 secrets | %s |\n",
		len(fidelityCorpus), pct, r.exact, r.total, r.spurious, r.leaked, ok)
}

func (e *env) printFidelity() error {
	r, err := e.fidelityResult()
	if err != nil {
		return err
	}
	fmt.Printf("| figure | Gatehouse | OpenSSH | ratio | goal | verdict |\n|---|---|---|---|---|---|\n")
	r.print()
	return nil
}

// result is one mode's figures.
type result struct {
	setup    time.Duration
	mbps     float64
	p50, p99 time.Duration
	rounds   string // each bulk round's MB/s
}

// benchModes are the four ways through, OpenSSH's and Gatehouse's.
var benchModes = []struct{ name, host string }{
	{"OpenSSH direct", "direct"},
	{"OpenSSH ProxyJump", "viajump"},
	{"Gatehouse direct", "gwdirect"},
	{"Gatehouse ProxyJump", "gwjump"},
}

// bulkAndEcho runs -rounds rounds of the throughput and/or echo
// measurement, every mode once per round.
func (e *env) bulkAndEcho(modes []struct{ name, host string }, res map[string]*result, bulk, echo bool) error {
	rounds := max(*flagRounds, 1)
	mbps := map[string][]float64{}
	echoes := map[string][]time.Duration{}
	for i := 0; i < rounds; i++ {
		for _, m := range modes {
			if bulk {
				v, err := e.throughput(m.host)
				if err != nil {
					return fmt.Errorf("%s throughput: %w", m.name, err)
				}
				mbps[m.host] = append(mbps[m.host], v)
			}
			if echo {
				ds, err := e.echo(m.host, max(*flagEcho/rounds, 1))
				if err != nil {
					return fmt.Errorf("%s echo: %w", m.name, err)
				}
				echoes[m.host] = append(echoes[m.host], ds...)
			}
		}
	}
	for _, m := range modes {
		r := res[m.host]
		if v := mbps[m.host]; len(v) > 0 {
			var parts []string
			for _, x := range v {
				parts = append(parts, fmt.Sprintf("%.0f", x))
			}
			r.rounds = strings.Join(parts, ", ")
			sort.Float64s(v)
			r.mbps = v[len(v)/2]
		}
		if ds := echoes[m.host]; len(ds) > 0 {
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			r.p50, r.p99 = ds[len(ds)/2], ds[len(ds)*99/100]
		}
	}
	return nil
}

// extras are the gateway-only figures.
type extras struct {
	rate                    float64
	cpuPerSession           time.Duration
	cpuShare                float64
	idle                    idleResult
	searchSel, searchCommon time.Duration
}

// printGoals prints the table: each figure, its ratio, its goal.
func printGoals(gd, gj, jump, directKex *result, x extras) {
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	fmt.Printf("| figure | Gatehouse | OpenSSH | ratio | goal | verdict |\n|---|---|---|---|---|---|\n")
	if !*flagSkipBulk {
		r := ratio(gd.mbps, jump.mbps)
		fmt.Printf("| bulk, `login@target@gw`, %s, recorded | %.0f MB/s | %.0f MB/s (`-J`) | %.2f× | ≥ 1.2× | %s |\n", *flagCipher, gd.mbps, jump.mbps, r, verdict(r >= 1.2))
		r = ratio(gj.mbps, jump.mbps)
		fmt.Printf("| bulk, Gatehouse as `-J` host | %.0f MB/s | %.0f MB/s (`-J`) | %.2f× | ≥ 1.0× | %s |\n", gj.mbps, jump.mbps, r, verdict(r >= 1.0))
	}
	p50 := float64(gd.p50) / float64(jump.p50)
	p99 := float64(gd.p99) / float64(jump.p99)
	fmt.Printf("| echo p50 / p99, `login@target@gw` | %d / %d µs | %d / %d µs (`-J`) | %.2f× / %.2f× | p50 ≤ 1.0×, p99 ≤ 1.2× | %s |\n",
		gd.p50.Microseconds(), gd.p99.Microseconds(), jump.p50.Microseconds(), jump.p99.Microseconds(), p50, p99, verdict(p50 <= 1.0 && p99 <= 1.2))
	p50 = float64(gj.p50) / float64(jump.p50)
	p99 = float64(gj.p99) / float64(jump.p99)
	fmt.Printf("| echo p50 / p99, Gatehouse as `-J` host | %d / %d µs | %d / %d µs (`-J`) | %.2f× / %.2f× | p50 ≤ 1.0×, p99 ≤ 1.2× | %s |\n",
		gj.p50.Microseconds(), gj.p99.Microseconds(), jump.p50.Microseconds(), jump.p99.Microseconds(), p50, p99, verdict(p50 <= 1.0 && p99 <= 1.2))
	r := ms(gd.setup) / ms(directKex.setup)
	fmt.Printf("| setup, curve25519 both sides | %.1f ms | %.1f ms (direct, curve25519 forced) | %.2f× | ≤ 1.15× | %s |\n", ms(gd.setup), ms(directKex.setup), r, verdict(r <= 1.15))
	if *flagRateTime > 0 {
		fmt.Printf("| new recorded sessions per second, gateway alone (Go target, %d clients) | %.0f/s, gateway CPU %.1f ms per session (%.0f%% of one core) | | | ≥ 200/s | %s |\n",
			*flagRateClients, x.rate, float64(x.cpuPerSession)/1e6, x.cpuShare*100, verdict(x.rate >= 200))
	}
	if *flagIdle > 0 {
		i := x.idle
		fmt.Printf("| gateway memory per idle interactive recorded session (heap in use + stacks after a GC; %.1f goroutines) | %.1f KiB at %d (RSS %.1f KiB) | | | ≤ 100 KiB at 2,000 | %s |\n",
			i.goroutines, i.heapPlusStacks/1024, *flagIdle, i.rss/1024, verdict(i.heapPlusStacks <= 100*1024 && *flagIdle >= 2000))
	}
	if *flagSearch > 0 {
		fmt.Printf("| \"command contains\" over %d sessions (selective / every session matches) | %.1f / %.1f ms | | | ≤ 10 ms | %s |\n",
			*flagSearch, ms(x.searchSel), ms(x.searchCommon), verdict(x.searchSel <= 10*time.Millisecond && x.searchCommon <= 10*time.Millisecond))
	}
}

// kex is the key exchange the client negotiates with host.
func (e *env) kex(host string) string {
	out, _ := e.ssh("-v", "-o", "LogLevel=DEBUG1", host, "true").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if _, a, ok := strings.Cut(line, "kex: algorithm: "); ok {
			return strings.TrimSpace(a)
		}
	}
	return "?"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// sshd is one OpenSSH server on loopback.
type sshd struct {
	addr    string
	hostPub string
	cmd     *exec.Cmd
}

func startSSHD(dir, name, extra string) (*sshd, error) {
	d := filepath.Join(dir, name)
	os.MkdirAll(d, 0o700)
	os.MkdirAll("/run/sshd", 0o755)
	hk := filepath.Join(d, "hostkey")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf("Port %s\nListenAddress 127.0.0.1\nHostKey %s\nUsePAM no\nPermitRootLogin yes\nStrictModes no\nPidFile none\n"+
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding yes\nMaxStartups 1000\nMaxSessions 1000\n"+
		"Subsystem sftp /usr/lib/openssh/sftp-server\n%s", port, hk, extra)
	cf := filepath.Join(d, "sshd_config")
	os.WriteFile(cf, []byte(conf), 0o600)
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cf, "-E", filepath.Join(d, "log"))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitListening(addr, cmd.Process.Pid, "sshd "+name, filepath.Join(d, "log")); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	pub, _ := os.ReadFile(hk + ".pub")
	return &sshd{addr: addr, hostPub: strings.TrimSpace(string(pub)), cmd: cmd}, nil
}

func (e *env) gatehouse(args ...string) (string, error) {
	out, err := exec.Command(e.gh, append(args, "--config", filepath.Join(e.dir, "gatehouse.yaml"))...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gatehouse %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (e *env) setup() error {
	e.gh = *flagGH
	if e.gh == "" {
		e.gh = filepath.Join(e.dir, "gatehouse")
		build := exec.Command("go", "build", "-o", e.gh, "./cmd/gatehouse")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build gatehouse: %w", err)
		}
	}
	key := filepath.Join(e.dir, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	os.WriteFile(filepath.Join(e.dir, "authorized_keys"), pub, 0o600)
	gwAddr, err := freePort()
	if err != nil {
		return err
	}
	e.gwAddr = gwAddr
	// First pass: create the CAs so the target can trust the session CA.
	if e.metricsAddr, err = freePort(); err != nil {
		return err
	}
	cfg := fmt.Sprintf("data_dir: %s/data\nssh: {listen: %q, max_unauthenticated_per_ip: 1000}\nweb: {listen: \"127.0.0.1:0\"}\nmetrics: {listen: %q}\n",
		e.dir, gwAddr, e.metricsAddr)
	os.WriteFile(filepath.Join(e.dir, "gatehouse.yaml"), []byte(cfg), 0o600)
	ca, err := e.gatehouse("ca", "public", "--target")
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(e.dir, "session_ca.pub"), []byte(ca), 0o644)
	authKeys := "AuthorizedKeysFile " + filepath.Join(e.dir, "authorized_keys") + "\n"
	if e.target, err = startSSHD(e.dir, "target", authKeys+"TrustedUserCAKeys "+filepath.Join(e.dir, "session_ca.pub")+"\n"); err != nil {
		return err
	}
	if e.jump, err = startSSHD(e.dir, "jump", authKeys); err != nil {
		return err
	}
	if e.goTarget, err = bench.StartGoTarget(ca); err != nil {
		return err
	}
	cfg += fmt.Sprintf(`targets:
  - name: bench
    address: %q
    host_key: %q
  - name: fast
    address: %q
    host_key: %q
roles:
  - name: bench
    allow: {targets: {names: [bench, fast]}, logins: [root]}
    options: {sftp: true}
bindings:
  - user: bench
    roles: [bench]
`, e.target.addr, e.target.hostPub, e.goTarget.Addr(), e.goTarget.HostPub)
	cfg = withGuardRole(cfg)
	os.WriteFile(filepath.Join(e.dir, "gatehouse.yaml"), []byte(cfg), 0o600)
	if _, err := e.gatehouse("admin", "issue-cert", "--user", "bench", "--pubkey", key+".pub"); err != nil {
		return err
	}
	hostCA, err := e.gatehouse("ca", "public", "--host")
	if err != nil {
		return err
	}
	e.gwProc = exec.Command(e.gh, "serve", "--config", filepath.Join(e.dir, "gatehouse.yaml"))
	if *flagGWProfile != "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*flagGWProfile, 0o755); err != nil {
			return err
		}
		e.gwProc = exec.Command(self, serveProfileArg, filepath.Join(e.dir, "gatehouse.yaml"), *flagGWProfile)
	}
	e.gwProc.Stderr, _ = os.Create(filepath.Join(e.dir, "gatehouse.log"))
	e.gwProc.Env = append(os.Environ(), strings.Fields(*flagGWEnv)...)
	if err := e.gwProc.Start(); err != nil {
		return err
	}
	if err := waitListening(gwAddr, e.gwProc.Process.Pid, "gatehouse serve", filepath.Join(e.dir, "gatehouse.log")); err != nil {
		return err
	}
	e.hostCALine = strings.TrimSpace(hostCA)
	return e.writeClientConfig(key, hostCA)
}

func (e *env) writeClientConfig(key, hostCA string) error {
	th, tp, _ := net.SplitHostPort(e.target.addr)
	jh, jp, _ := net.SplitHostPort(e.jump.addr)
	gh, gp, _ := net.SplitHostPort(e.gwAddr)
	kh := filepath.Join(e.dir, "known_hosts")
	known := fmt.Sprintf("[%s]:%s %s\n[%s]:%s %s\n%s", th, tp, e.target.hostPub, jh, jp, e.jump.hostPub, hostCA)
	os.WriteFile(kh, []byte(known), 0o644)
	conf := fmt.Sprintf(`Host direct
  HostName %[1]s
  Port %[2]s
Host directkex
  HostName %[1]s
  Port %[2]s
  KexAlgorithms curve25519-sha256
Host viajump
  HostName %[1]s
  Port %[2]s
  ProxyJump root@%[3]s:%[4]s
Host gwdirect
  HostName %[5]s
  Port %[6]s
  User root@bench
  CertificateFile %[7]s-cert.pub
Host gw
  HostName %[5]s
  Port %[6]s
  User bench
  CertificateFile %[7]s-cert.pub
Host gwjump
  HostName bench
  ProxyJump gw
  CertificateFile %[7]s-cert.pub
Host *
  User root
  IdentityFile %[7]s
  IdentitiesOnly yes
  UserKnownHostsFile %[8]s
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
  ServerAliveInterval 10
  ServerAliveCountMax 3
  Ciphers %[9]s
  LogLevel ERROR
`, th, tp, jh, jp, gh, gp, key, kh, *flagCipher)
	e.clientCfg = filepath.Join(e.dir, "ssh_config")
	return os.WriteFile(e.clientCfg, []byte(conf), 0o644)
}

func (e *env) teardown() {
	for _, p := range []*exec.Cmd{e.gwProc} {
		if p != nil && p.Process != nil {
			p.Process.Signal(os.Interrupt)
			p.Wait()
		}
	}
	if e.goTarget != nil {
		e.goTarget.Close()
	}
	for _, s := range []*sshd{e.target, e.jump} {
		if s != nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	}
}

func (e *env) ssh(args ...string) *exec.Cmd {
	cmd := exec.Command("ssh", append([]string{"-F", e.clientCfg}, args...)...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	return cmd
}

func (e *env) setupTime(host string) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < *flagN; i++ {
		start := time.Now()
		if out, err := e.ssh(host, "true").CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

func (e *env) throughput(host string) (float64, error) {
	cmd := e.ssh(host, "head -c "+strconv.FormatInt(*flagBytes, 10)+" /dev/zero")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if strings.HasPrefix(host, "gw") {
		e.profileStart()
		defer e.profileStop()
	}
	gw0, _ := procCPU(e.gwProc.Process.Pid)
	gc0 := e.gcCPU()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, _ := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	el := time.Since(start)
	if n != *flagBytes {
		return 0, fmt.Errorf("received %d bytes, want %d", n, *flagBytes)
	}
	// CPU per MB of the client (ssh and, for -J, its ssh -W child) and of
	// the gateway: which side a mode's throughput is bound by.
	gw1, _ := procCPU(e.gwProc.Process.Pid)
	gc := e.gcCPU() - gc0
	client := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	mb := float64(n) / 1e6
	// The gateway seals the recording after the client has gone (it hashes
	// the whole file): a second later, its CPU per MB with the seal.
	time.Sleep(time.Second)
	gw2, _ := procCPU(e.gwProc.Process.Pid)
	fmt.Fprintf(os.Stderr, "bulk %-9s %6.0f MB/s  client CPU %.2f ms/MB  gateway CPU %.2f ms/MB (%.2f with the seal; garbage collector %.2f)\n", host, mb/el.Seconds(),
		ms(client)/mb, ms(gw1-gw0)/mb, ms(gw2-gw0)/mb, ms(gc)/mb)
	return mb / el.Seconds(), nil
}

// echo measures keystroke round trips through `ssh -tt HOST` running a raw
// `cat` on the target.
func (e *env) echo(host string, keys int) ([]time.Duration, error) {
	cmd := e.ssh("-tt", host, "stty raw -echo; echo READY; exec cat")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
	if err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); f.Close() }()
	if _, err := exec.Command("stty", "-F", f.Name(), "raw", "-echo").CombinedOutput(); err != nil {
		// The local pty stays cooked; echo still measures the round trip.
		_ = err
	}
	r := bufio.NewReader(f)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitFor(ctx, r, "READY"); err != nil {
		return nil, err
	}
	if strings.HasPrefix(host, "gw") {
		e.profileStart()
		defer e.profileStop()
	}
	gw0 := procCPUPrecise(e.gwProc.Process.Pid)
	var ds []time.Duration
	buf := make([]byte, 64)
	defer func() {
		if len(ds) > 0 {
			gw := procCPUPrecise(e.gwProc.Process.Pid) - gw0
			fmt.Fprintf(os.Stderr, "echo %-9s %d keys  gateway CPU %.1f µs per keystroke\n", host, len(ds), float64(gw.Microseconds())/float64(len(ds)))
		}
	}()
	for i := 0; i < keys; i++ {
		c := byte('a' + i%26)
		start := time.Now()
		f.Write([]byte{c})
		for {
			n, err := r.Read(buf)
			if err != nil {
				return nil, err
			}
			if bytes.IndexByte(buf[:n], c) >= 0 {
				break
			}
		}
		ds = append(ds, time.Since(start))
		time.Sleep(2 * time.Millisecond)
	}
	return ds, nil
}

func waitFor(ctx context.Context, r *bufio.Reader, s string) error {
	done := make(chan error, 1)
	go func() {
		var acc []byte
		buf := make([]byte, 256)
		for {
			n, err := r.Read(buf)
			acc = append(acc, buf[:n]...)
			if bytes.Contains(acc, []byte(s)) {
				done <- nil
				return
			}
			if err != nil {
				done <- fmt.Errorf("waiting for %q: %v (got %q)", s, err, acc)
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timeout waiting for %q", s)
	}
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
