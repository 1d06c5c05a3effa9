package gateway

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// quickAckMode reports whether Linux acknowledges what nc receives at once
// (TCP_QUICKACK reads back as "not in delayed-ACK ping-pong mode").
func quickAckMode(t *testing.T, nc net.Conn) bool {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v != 0
}

// TestBufConnPushesAcksDuringSetup checks that a read in a connection's
// first setupAckBytes takes the socket out of Linux's delayed-ACK mode (the
// peer's next small packet, held by its Nagle algorithm until our ACK, is
// not kept waiting 40 ms), and that reads after them leave the kernel's
// ACK timing alone.
func TestBufConnPushesAcksDuringSetup(t *testing.T) {
	client, sc := tcpPair(t)
	defer sc.Close()
	c := newBufConn(sc)
	// pingPong trades small messages as a request/reply protocol does,
	// which puts the receiving socket into delayed-ACK mode, then has the
	// client send one more for c to read.
	msg := make([]byte, 100)
	pingPong := func() {
		t.Helper()
		for i := 0; i < 8; i++ {
			client.Write(msg)
			if _, err := io.ReadFull(sc, msg); err != nil {
				t.Fatal(err)
			}
			sc.Write(msg)
			if _, err := io.ReadFull(client, msg); err != nil {
				t.Fatal(err)
			}
		}
		if quickAckMode(t, sc) {
			t.Skip("this kernel did not enter delayed-ACK mode; nothing to check")
		}
		client.Write(msg)
	}
	pingPong()
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
	if !quickAckMode(t, sc) {
		t.Fatal("a read during setup left the socket delaying its ACKs")
	}
	c.setupLeft = 0
	pingPong()
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
	if quickAckMode(t, sc) {
		t.Fatal("a read after setup changed the socket's ACK mode")
	}
}
