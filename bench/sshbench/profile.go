package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
)

// With -gw-profile DIR the gateway is not the gatehouse binary but this
// program re-executed as "sshbench serve-profile CONFIG DIR": the same
// app.Start that `gatehouse serve` runs, plus a CPU profile of each measured
// part (SIGUSR1 starts one, SIGUSR2 writes it, a heap profile and the goroutines) — the
// gateway's own profile, without the clients and targets that share the
// machine with it.
const serveProfileArg = "serve-profile"

// serveProfile runs the gateway until SIGINT/SIGTERM.
func serveProfile(cfgPath, dir string) error {
	// Sample every 1 KiB allocated instead of every 512 KiB: per-session
	// objects are a few hundred bytes each, and at the default rate the
	// heap profile of an idle gateway names only a handful of them.
	runtime.MemProfileRate = 1024
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	a, err := app.Start(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	var cpu *os.File
	n := 0
	for s := range sig {
		switch s {
		case syscall.SIGUSR1:
			if cpu != nil {
				continue
			}
			n++
			if cpu, err = os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", n))); err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(cpu); err != nil {
				return err
			}
		case syscall.SIGUSR2:
			if cpu != nil {
				pprof.StopCPUProfile()
				cpu.Close()
				cpu = nil
			}
			runtime.GC()
			if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", n))); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
			if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("goroutines-%d.txt", n))); err == nil {
				pprof.Lookup("goroutine").WriteTo(f, 1)
				f.Close()
			}
		default:
			if cpu != nil {
				pprof.StopCPUProfile()
				cpu.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return a.Close(ctx)
		}
	}
	return nil
}

// profileStart and profileStop bracket a measured part when -gw-profile is
// set (no-ops otherwise).
func (e *env) profileStart() {
	if *flagGWProfile != "" {
		e.gwProc.Process.Signal(syscall.SIGUSR1)
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) profileStop() {
	if *flagGWProfile != "" {
		e.gwProc.Process.Signal(syscall.SIGUSR2)
		time.Sleep(2 * time.Second)
	}
}
