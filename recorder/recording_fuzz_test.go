package recorder

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"syscall"
	"testing"
)

// FuzzDecodeEvents feeds arbitrary record payloads to the event decoder: it
// must reject or decode, never panic or read out of bounds.
func FuzzDecodeEvents(f *testing.F) {
	f.Add(appendEvent(appendEvent(nil, 'o', 5, []byte("hello")), 'r', 9, []byte("80x24")))
	f.Add([]byte{'o', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{'i', 1, 200, 1, 'x'})
	f.Add(appendEvent(appendEvent(nil, 'e', 1, []byte("err")), recElided, 2, []byte{'o', 0x80, 0x80, 0x01}))
	f.Fuzz(func(t *testing.T, p []byte) {
		var total int
		decodeEvents(p, func(ev castEvent) error {
			total += len(ev.Data)
			return nil
		})
		if total > len(p) {
			t.Fatalf("decoded %d data bytes from %d input bytes", total, len(p))
		}
	})
}

// FuzzRecordReader feeds arbitrary files to the encrypted record reader.
func FuzzRecordReader(f *testing.F) {
	key := make([]byte, 32)
	aead, _ := newAEAD(key)
	good := []byte(recMagic)
	ct := aead.Seal(nil, recNonce(0), []byte{recHeader, '{', '}'}, []byte("id"))
	good = binary.BigEndian.AppendUint32(good, uint32(len(ct)))
	good = append(good, ct...)
	f.Add(good)
	f.Add([]byte(recMagic + "\xff\xff\xff\xff"))
	f.Add([]byte("not a recording"))
	f.Fuzz(func(t *testing.T, file []byte) {
		rr, err := newRecordReader(bytes.NewReader(file), key, "id")
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			if _, err := rr.next(); err != nil {
				return
			}
		}
	})
}

// BenchmarkRecordingOutput measures the recorder's cost per byte of session
// output in 32 KiB chunks (the relay's read size).
func BenchmarkRecordingOutput(b *testing.B) {
	r, _, _ := newRecordings(b, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "bench", User: "u", Target: "t", Login: "l"})
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rec.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	rec.Close("done")
}

// BenchmarkRecordingOutputRaw measures what recording costs the relay per
// MB of a session without a terminal (its stdout hashed and stored), in
// 32 KiB chunks: relay-ms/MB is the CPU of the calling thread alone (the
// session's relay goroutine), total-ms/MB the whole process's (with the
// writer goroutine and the GC). Linux only (RUSAGE_THREAD). "full" is a
// stream past StreamFullBytes (the default 64 MiB; here 1 MiB): hashed,
// no longer stored.
func BenchmarkRecordingOutputRaw(b *testing.B) {
	b.Run("stored", func(b *testing.B) { benchmarkOutputRaw(b, RecordingOptions{}) })
	b.Run("full", func(b *testing.B) { benchmarkOutputRaw(b, RecordingOptions{StreamFullBytes: 1 << 20}) })
}

func benchmarkOutputRaw(b *testing.B, opts RecordingOptions) {
	r, _, _ := newRecordings(b, opts)
	rec, err := r.Start(SessionInfo{SessionID: "bench", User: "u", Target: "t", Login: "l", Command: "x"})
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048)
	b.SetBytes(int64(len(chunk)))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var self0, thr0, self1, thr1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &thr0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rec.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := rec.Close("done"); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	syscall.Getrusage(1, &thr1)
	syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	cpu := func(a, z syscall.Rusage) float64 {
		return float64(z.Utime.Nano()+z.Stime.Nano()-a.Utime.Nano()-a.Stime.Nano()) / 1e6
	}
	mb := float64(b.N) * float64(len(chunk)) / 1e6
	b.ReportMetric(cpu(thr0, thr1)/mb, "relay-ms/MB")
	b.ReportMetric(cpu(self0, self1)/mb, "total-ms/MB")
}
