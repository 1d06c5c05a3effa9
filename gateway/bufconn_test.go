package gateway

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"
)

// TestBufConnStream checks that bufConn delivers a stream whole and in
// order whatever the read sizes, and holds no buffer once a burst is over
// (idle sessions must not keep 64 KiB each).
func TestBufConnStream(t *testing.T) {
	client, sc := tcpPair(t)
	c := newBufConn(sc)
	defer c.Close()
	rng := rand.New(rand.NewSource(1))
	want := make([]byte, 8<<20)
	rng.Read(want)
	go func() {
		for p := want; len(p) > 0; {
			n := min(len(p), 1+rng.Intn(100<<10))
			client.Write(p[:n])
			p = p[n:]
		}
	}()
	got := make([]byte, 0, len(want))
	sizes := []int{4, 4096, 30 << 10, 1, 70 << 10, 4092}
	for i := 0; len(got) < len(want); i++ {
		p := make([]byte, min(sizes[i%len(sizes)], len(want)-len(got)))
		n, err := c.Read(p)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the stream read through bufConn differs from what was written")
	}
	// A keystroke after the burst: read and nothing held.
	client.Write([]byte("k"))
	p := make([]byte, 4096)
	if n, err := io.ReadAtLeast(c, p, 1); err != nil || string(p[:n]) != "k" {
		t.Fatalf("keystroke read %q, %v", p[:n], err)
	}
	if c.buf != nil || c.streaming {
		t.Errorf("after a short read the connection still holds a buffer (%v) or streams (%v)", c.buf != nil, c.streaming)
	}
}

// tcpPair connects two sockets over loopback TCP; both close at the end of
// the test.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
