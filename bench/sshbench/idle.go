package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/bench"
)

// idleMemory opens n interactive recorded sessions (pty and shell) through
// the gateway to the in-process Go target with Go clients (n OpenSSH client
// processes and n sshd sessions would not fit next to it) and reports the
// gateway's resident memory growth per session.
func (e *env) idleMemory(n int) (float64, error) {
	cfg, err := e.goClientConfig("root@fast")
	if err != nil {
		return 0, err
	}
	before, err := rss(e.gwProc.Process.Pid)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var clients []*ssh.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				c, err := bench.IdleSession(e.gwAddr, cfg)
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				clients = append(clients, c)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("%d of %d sessions failed, first: %w", n-len(clients), n, err)
	}
	time.Sleep(3 * time.Second)
	after, err := rss(e.gwProc.Process.Pid)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "gateway RSS %d KiB -> %d KiB with %d idle sessions\n", before/1024, after/1024, n)
	return float64(after-before) / float64(n), nil
}
