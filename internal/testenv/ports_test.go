package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortLeavesTheEphemeralRange: ports for listeners started later
// are below the kernel's ephemeral range (where every outgoing connection
// takes its source port), free, and never handed out twice in a process.
func TestFreePortLeavesTheEphemeralRange(t *testing.T) {
	lo := EphemeralLow()
	seen := map[string]bool{}
	for i := 0; i < 300; i++ {
		addr, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		if p < LowestPort || p >= lo {
			t.Fatalf("port %d outside [%d, %d)", p, LowestPort, lo)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		l.Close()
	}
}
