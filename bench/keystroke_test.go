package bench

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkKeystroke types one key at a time into an interactive recorded
// session through an in-process gateway to the in-process Go target (its
// shell echoes each key) and waits for the echo: the relay's, recorder's
// and command tracker's work per keystroke, both ways, without OpenSSH or
// a network in between. The client, the target and the gateway share this
// process, so ns/op and cpu-µs/key are the sum of all three; compare two
// builds of the gateway by the difference. Run with:
//
//	go test ./bench/ -run '^$' -bench Keystroke -benchtime 20000x -count 5
func BenchmarkKeystroke(b *testing.B) {
	gw, ccfg, tgt := startInProcessGateway(b)
	defer gw.Close(context.Background())
	defer tgt.Close()
	c, in, out, err := InteractiveSession(gw.SSHAddr(), ccfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Lines of 39 keys and Enter, as a person types short commands: the
	// command tracker sees lines end, not one line growing for ever.
	x, enter := []byte{'x'}, []byte{'\r'}
	echoX, echoEnter := []byte("x"), []byte("\r\n"+prompt)
	got := make([]byte, len(echoEnter))
	b.ResetTimer()
	cpu0 := ProcessCPU()
	for i := 0; i < b.N; i++ {
		key, want := x, echoX
		if i%40 == 39 {
			key, want = enter, echoEnter
		}
		if _, err := in.Write(key); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(out, got[:len(want)]); err != nil {
			b.Fatal(err)
		}
		if string(got[:len(want)]) != string(want) {
			b.Fatalf("echo %q, want %q", got[:len(want)], want)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((ProcessCPU()-cpu0)/time.Microsecond)/float64(b.N), "cpu-µs/key")
}
