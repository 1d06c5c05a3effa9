package main

import (
	"bufio"
	"fmt"
	"sort"
	"strings"
	"time"
)

// With -setup-phases, -only setup runs each ssh with -vvv and times the
// session's steps from the client's own debug lines: where the time goes,
// and "to exec accepted", the part the gateway decides (the rest is the
// target's shell starting and running the command).

// phaseMarks are the debug lines of OpenSSH 9.x's client that mark a step.
var phaseMarks = []struct{ key, line string }{
	{"ecdh-sent", "expecting SSH2_MSG_KEX_ECDH_REPLY"},
	{"ecdh-recv", "SSH2_MSG_KEX_ECDH_REPLY received"},
	{"newkeys", "SSH2_MSG_NEWKEYS sent"},
	{"service", "SSH2_MSG_SERVICE_ACCEPT received"},
	{"auth", "Authenticated to"},
	{"confirm", "channel_input_open_confirmation: channel 0: callback start"},
	{"exec", "exec request accepted"},
	{"exit-status", "rtype exit-status"},
}

// phases are the reported spans between marks ("" is the start).
var phases = []struct{ name, from, to string }{
	{"ECDH wait", "ecdh-sent", "ecdh-recv"},
	{"NEWKEYS→service accept", "newkeys", "service"},
	{"auth", "service", "auth"},
	{"auth→channel confirmed", "auth", "confirm"},
	{"to exec accepted", "", "exec"},
	{"exec→exit-status", "exec", "exit-status"},
	{"total", "", "end"},
}

// timedSSH runs ssh -vvv HOST true and returns when each mark's line came.
func (e *env) timedSSH(host string) (map[string]time.Duration, error) {
	cmd := e.ssh("-vvv", host, "true")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	at := map[string]time.Duration{}
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range phaseMarks {
			if _, seen := at[m.key]; !seen && strings.Contains(line, m.line) {
				at[m.key] = time.Since(start)
			}
		}
		if tail = append(tail, line); len(tail) > 5 {
			tail = tail[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.Join(tail, "\n"))
	}
	at["end"] = time.Since(start)
	return at, nil
}

// phaseSpans adds one session's spans to acc[phase name].
func phaseSpans(at map[string]time.Duration, acc map[string][]time.Duration) {
	for _, p := range phases {
		to, ok := at[p.to]
		from, okFrom := at[p.from]
		if p.from == "" {
			from, okFrom = 0, true
		}
		if ok && okFrom {
			acc[p.name] = append(acc[p.name], to-from)
		}
	}
}

// printPhases prints each phase's median for one mode.
func printPhases(name string, acc map[string][]time.Duration) {
	var parts []string
	for _, p := range phases {
		ds := acc[p.name]
		if len(ds) == 0 {
			continue
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		parts = append(parts, fmt.Sprintf("%s %.1f", p.name, ms(ds[len(ds)/2])))
	}
	fmt.Printf("phases %-28s %s (ms, medians)\n", name, strings.Join(parts, "  "))
}
