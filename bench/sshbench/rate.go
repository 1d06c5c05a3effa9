package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// goClientConfig is an x/crypto/ssh client with the bench user's key and
// Gatehouse certificate, checking the gateway's host certificate.
func (e *env) goClientConfig(user string) (*ssh.ClientConfig, error) {
	keyPEM, err := os.ReadFile(filepath.Join(e.dir, "id"))
	if err != nil {
		return nil, err
	}
	key, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	certLine, err := os.ReadFile(filepath.Join(e.dir, "id-cert.pub"))
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certLine)
	if err != nil {
		return nil, err
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("id-cert.pub is not a certificate")
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, err
	}
	// The host CA line is "@cert-authority * <key>".
	f := strings.Fields(e.hostCALine)
	if len(f) < 4 {
		return nil, fmt.Errorf("host CA line %q", e.hostCALine)
	}
	hostCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.Join(f[2:], " ")))
	if err != nil {
		return nil, err
	}
	hk := (&ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return bytes.Equal(k.Marshal(), hostCA.Marshal())
	}}).CheckHostKey
	return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk,
		Timeout: 60 * time.Second}, nil
}

// sessionRate opens full recorded exec sessions (connection, certificate,
// policy, per-session certificate, target handshake, exec, recording, audit)
// through the gateway to the in-process Go target from -rate-clients
// goroutines for -rate-time, and reports sessions per second and the
// gateway process's CPU time per session (from /proc).
func (e *env) sessionRate() (perSec float64, cpuPerSession time.Duration, cpuShare float64, err error) {
	cfg, err := e.goClientConfig("root@fast")
	if err != nil {
		return 0, 0, 0, err
	}
	// Warm up: the first sessions pay for lazily built state.
	for i := 0; i < 5; i++ {
		if err := oneSession(e.gwAddr, cfg); err != nil {
			return 0, 0, 0, fmt.Errorf("warm-up session: %w", err)
		}
	}
	e.profileStart()
	gc0 := e.gcCPU()
	cpu0, err := procCPU(e.gwProc.Process.Pid)
	if err != nil {
		return 0, 0, 0, err
	}
	var done, failed atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(*flagRateTime)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *flagRateClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && failed.Load() == 0 {
				if err := oneSession(e.gwAddr, cfg); err != nil {
					// The first failure ends the run: the others stop
					// after their current session.
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu1, err := procCPU(e.gwProc.Process.Pid)
	if err != nil {
		return 0, 0, 0, err
	}
	e.profileStop()
	if n := failed.Load(); n > 0 {
		return 0, 0, 0, fmt.Errorf("%d sessions failed, first: %v", n, firstErr.Load())
	}
	n := done.Load()
	cpu := cpu1 - cpu0
	gc := e.gcCPU() - gc0
	fmt.Fprintf(os.Stderr, "session rate: %d sessions in %v, gateway CPU %v (garbage collector %.2f ms per session)\n", n, el.Round(time.Millisecond), cpu,
		ms(gc)/float64(max(n, 1)))
	return float64(n) / el.Seconds(), cpu / time.Duration(n), cpu.Seconds() / el.Seconds(), nil
}

// procCPU is a process's user plus system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name in parentheses; utime and stime are
	// fields 14 and 15 of the whole line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procCPUPrecise is the CPU time of process pid's live threads, from the
// scheduler's nanosecond accounting (/proc/PID/task/*/schedstat): fine
// enough for the gateway's CPU per keystroke, which /proc/PID/stat's 10 ms
// ticks are not.
func procCPUPrecise(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// raiseFileLimit lifts this process's open file limit to its hard limit
// (2,000 sessions hold two sockets each here, and the gateway inherits it).
func raiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
