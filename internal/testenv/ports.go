package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports. A port picked by listening on :0 and closing comes from the
// kernel's ephemeral range, where every outgoing connection on the machine
// takes its source port: one of them can hold it by the time the server it
// was picked for binds it (CI saw "bind: address already in use" for a
// gateway's web listener with three test runs on the machine), or a dial
// to a port nobody listens on yet can connect to itself. FreePort picks
// below that range, never the same port twice in one process, and only one
// nothing listens on.

var (
	portsMu sync.Mutex
	given   = map[int]bool{} // ports FreePort handed out in this process
)

// EphemeralLow is the first port of the kernel's ephemeral range.
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil {
				return lo
			}
		}
	}
	return 32768
}

// LowestPort is the lowest port FreePort hands out.
const LowestPort = 10000

// FreePort returns a free loopback address ("127.0.0.1:PORT") for a server
// to listen on, below the ephemeral range.
func FreePort() (string, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	hi := EphemeralLow()
	if hi-LowestPort < 1000 {
		return "", fmt.Errorf("the ephemeral port range starts at %d: no room below it for test listeners", hi)
	}
	for i := 0; i < 1000; i++ {
		p := LowestPort + rand.IntN(hi-LowestPort)
		if given[p] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		given[p] = true
		return addr, nil
	}
	return "", fmt.Errorf("no free port between %d and %d", LowestPort, hi)
}
