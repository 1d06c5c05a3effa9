package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/bench"
)

// memSample is the gateway process's memory as the OS and the Go runtime
// see it, read right after a garbage collection.
type memSample struct {
	rss        int64 // resident set (what the OS charges: live data, GC headroom, freed pages not yet returned)
	heapInuse  int64 // heap spans in use once swept (live objects and the free slots of their spans)
	unswept    int64 // heap in use right after the GC, before sweeping (counts garbage)
	heapLive   int64 // heap the last GC found reachable
	stack      int64 // goroutine stacks
	goroutines int64
}

// idleResult is memory per idle session, each figure's growth divided by n.
type idleResult struct {
	n                               int
	rss, heapInuse, heapLive, stack float64 // bytes per session
	unswept                         float64 // heap in use right after the GC, before sweeping
	goroutines                      float64
	heapPlusStacks                  float64 // heapInuse + stack: the goal's figure
	rssBefore, rssAfter             int64
}

// idleMemory opens n interactive recorded sessions (pty and shell) through
// the gateway to the in-process Go target with Go clients (n OpenSSH client
// processes and n sshd sessions would not fit next to it) and reports the
// gateway's own memory growth per session: its heap in use plus goroutine
// stacks right after a GC (from its /metrics), and its RSS. Clients and the
// target live in this process, so nothing of theirs is counted.
func (e *env) idleMemory(n int) (idleResult, error) {
	cfg, err := e.goClientConfig("root@fast")
	if err != nil {
		return idleResult{}, err
	}
	before, err := e.memAfterGC(cfg)
	if err != nil {
		return idleResult{}, err
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
		return idleResult{}, fmt.Errorf("%d of %d sessions failed, first: %w", n-len(clients), n, err)
	}
	time.Sleep(3 * time.Second)
	e.profileStart()
	after, err := e.memAfterGC(cfg)
	e.profileStop()
	if err != nil {
		return idleResult{}, err
	}
	// Stacks shrink only at a GC, by half each time, when a goroutine uses
	// under a quarter of its stack: those grown during a session's setup
	// take several collections to come down. Show how the figure moves over
	// the next collections (an idle gateway collects at least every two
	// minutes).
	for i := 2; i <= 4; i++ {
		m, err := e.memAfterGC(cfg)
		if err != nil {
			return idleResult{}, err
		}
		fmt.Fprintf(os.Stderr, "after GC %d: per session heap in use %.1f KiB, live %.1f KiB, stacks %.1f KiB, RSS %.1f KiB\n", i,
			float64(m.heapInuse-before.heapInuse)/float64(n)/1024, float64(m.heapLive-before.heapLive)/float64(n)/1024,
			float64(m.stack-before.stack)/float64(n)/1024, float64(m.rss-before.rss)/float64(n)/1024)
	}
	per := func(a, b int64) float64 { return float64(a-b) / float64(n) }
	r := idleResult{n: n, rss: per(after.rss, before.rss), heapInuse: per(after.heapInuse, before.heapInuse),
		heapLive: per(after.heapLive, before.heapLive), unswept: per(after.unswept, before.unswept), stack: per(after.stack, before.stack),
		goroutines: per(after.goroutines, before.goroutines), rssBefore: before.rss, rssAfter: after.rss}
	r.heapPlusStacks = r.heapInuse + r.stack
	fmt.Fprintf(os.Stderr, "gateway with %d idle sessions: RSS %d -> %d KiB; per session: heap in use %.1f KiB once swept (%.1f right after the GC; live %.1f), stacks %.1f KiB, %.1f goroutines, RSS %.1f KiB\n",
		n, before.rss/1024, after.rss/1024, r.heapInuse/1024, r.unswept/1024, r.heapLive/1024, r.stack/1024, r.goroutines, r.rss/1024)
	return r, nil
}

// memAfterGC makes the gateway collect garbage — by opening short exec
// sessions until its GC count moves (an idle gateway allocates nothing, so
// it would not collect for minutes) — and then reads its memory.
func (e *env) memAfterGC(cfg *ssh.ClientConfig) (memSample, error) {
	m0, err := e.scrape()
	if err != nil {
		return memSample{}, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := oneSession(e.gwAddr, cfg); err != nil {
			return memSample{}, err
		}
		m, err := e.scrape()
		if err != nil {
			return memSample{}, err
		}
		if m["go_gc_duration_seconds_count"] > m0["go_gc_duration_seconds_count"] {
			unswept := int64(m["go_memstats_heap_inuse_bytes"])
			if m, err = e.swept(m); err != nil {
				return memSample{}, err
			}
			rss, err := rss(e.gwProc.Process.Pid)
			if err != nil {
				return memSample{}, err
			}
			return memSample{rss: rss, unswept: unswept, heapInuse: int64(m["go_memstats_heap_inuse_bytes"]), heapLive: int64(m["go_gc_heap_live_bytes"]),
				stack: int64(m["go_memstats_stack_inuse_bytes"]), goroutines: int64(m["go_goroutines"])}, nil
		}
		if time.Now().After(deadline) {
			return memSample{}, fmt.Errorf("the gateway did not collect garbage within 2 minutes")
		}
	}
}

// swept waits, after a GC, until the gateway has swept its heap. Right
// after a collection the spans of objects it found dead still count as
// heap in use until the background sweeper frees them (hundreds of MiB at
// 2,000 sessions), so a figure read then counts garbage; once the sweeper
// is done, heap in use is what the gateway holds: live objects and the
// free slots in the spans they keep. It polls until heap in use stops
// falling (an idle gateway allocates only for the scrape), at most 10 s.
func (e *env) swept(m map[string]float64) (map[string]float64, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		n, err := e.scrape()
		if err != nil {
			return nil, err
		}
		d := m["go_memstats_heap_inuse_bytes"] - n["go_memstats_heap_inuse_bytes"]
		gcs := n["go_gc_duration_seconds_count"] != m["go_gc_duration_seconds_count"]
		m = n
		if !gcs && d < 64<<10 {
			return m, nil
		}
	}
	return m, nil
}

// scrape reads the gateway's /metrics into name → value (unlabelled
// series only).
func (e *env) scrape() (map[string]float64, error) {
	resp, err := http.Get("http://" + e.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		if name, v, ok := strings.Cut(line, " "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				out[name] = f
			}
		}
	}
	return out, sc.Err()
}

// gcCPU is the CPU time the gateway's garbage collector has taken so far
// (0 when the scrape fails: the figure is then left out).
func (e *env) gcCPU() time.Duration {
	m, err := e.scrape()
	if err != nil {
		return 0
	}
	return time.Duration(m["go_cpu_classes_gc_total_cpu_seconds_total"] * 1e9)
}
