package recorder

import (
	"context"
	"errors"
	"testing"
	"time"
)

// After Close, Start refuses at once (no flusher would write the new
// recording) and Check says so, while a recording started before Close
// still seals.
func TestRecordingsAfterClose(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{})
	live, err := r.Start(SessionInfo{SessionID: "before", User: "u", Target: "t", Login: "l"})
	if err != nil {
		t.Fatal(err)
	}
	live.Output([]byte("hello\r\n"))
	r.Close()
	r.Close() // twice is harmless
	done := make(chan error, 1)
	go func() {
		_, err := r.Start(SessionInfo{SessionID: "after", User: "u", Target: "t", Login: "l"})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrRecordingsClosed) {
			t.Fatalf("Start after Close = %v, want ErrRecordingsClosed", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Start after Close did not return within 60s: it blocks")
	}
	if err := r.Check(context.Background()); !errors.Is(err, ErrRecordingsClosed) {
		t.Fatalf("Check after Close = %v, want ErrRecordingsClosed", err)
	}
	sealed := make(chan Summary, 1)
	go func() { s, _ := live.Close("exited 0"); sealed <- s }()
	select {
	case s := <-sealed:
		if !s.Complete || s.SHA256 == "" {
			t.Fatalf("recording sealed after Recordings.Close: %+v", s)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sealing a recording after Recordings.Close did not return within 60s")
	}
}
