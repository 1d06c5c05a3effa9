package main

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// setupModes are the hosts -only setup times: the pair (Gatehouse
// direct addressing against OpenSSH direct with the gateway's key exchange)
// first, then the rest.
var setupModes = []struct{ name, host string }{
	{"OpenSSH direct, curve25519", "directkex"},
	{"Gatehouse direct", "gwdirect"},
	{"OpenSSH direct", "direct"},
	{"Gatehouse ProxyJump", "gwjump"},
}

// setupOnly times `ssh HOST true` -n times per mode, the modes interleaved
// (one run of each per round) so a swing in the machine's load hits them
// alike, and prints each mode's median and the gateway's CPU per session.
// With -setup-phases each ssh runs with -vvv and the steps of the session
// are timed from its debug lines (see phases.go). With -hold it then keeps everything running until SIGINT, printing the
// client config, for tracing one session by hand.
func (e *env) setupOnly() error {
	modes := setupModes
	if *flagSetupModes != "" {
		modes = modes[:0:0]
		for _, m := range setupModes {
			if strings.Contains(","+*flagSetupModes+",", ","+m.host+",") {
				modes = append(modes, m)
			}
		}
	}
	times := map[string][]time.Duration{}
	gwCPU := map[string]time.Duration{}
	spans := map[string]map[string][]time.Duration{}
	if *flagGWProfile != "" {
		time.Sleep(time.Second) // the profiling gateway installs its signal handlers after it listens
	}
	e.profileStart()
	for i := 0; i < *flagN; i++ {
		for _, m := range modes {
			cpu0, _ := procCPU(e.gwProc.Process.Pid)
			start := time.Now()
			if *flagSetupPhases {
				at, err := e.timedSSH(m.host)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				if spans[m.host] == nil {
					spans[m.host] = map[string][]time.Duration{}
				}
				phaseSpans(at, spans[m.host])
			} else if out, err := e.ssh(m.host, "true").CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", m.name, err, out)
			}
			times[m.host] = append(times[m.host], time.Since(start))
			cpu1, _ := procCPU(e.gwProc.Process.Pid)
			gwCPU[m.host] += cpu1 - cpu0
		}
	}
	e.profileStop()
	med := map[string]time.Duration{}
	for _, m := range modes {
		ds := times[m.host]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		med[m.host] = ds[len(ds)/2]
		fmt.Printf("setup %-28s median %6.1f ms  min %6.1f  max %6.1f  gateway CPU %.1f ms per session\n", m.name,
			ms(med[m.host]), ms(ds[0]), ms(ds[len(ds)-1]), ms(gwCPU[m.host])/float64(len(ds)))
	}
	for _, m := range modes {
		if spans[m.host] != nil {
			printPhases(m.name, spans[m.host])
		}
	}
	if g, d := med["gwdirect"], med["directkex"]; g > 0 && d > 0 {
		fmt.Printf("setup, curve25519 both sides: %.2f× (goal ≤ 1.15×)\n", ms(g)/ms(d))
	}
	if *flagHold {
		fmt.Printf("holding: ssh -F %s HOST (hosts %s); gateway pid %d, log %s/gatehouse.log; SIGINT ends\n",
			e.clientCfg, "direct directkex gwdirect gw gwjump viajump", e.gwProc.Process.Pid, e.dir)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
	}
	return nil
}
