package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Check reports whether a new recording could be written now: Recordings
// is not closed, and the directory accepts a file (the probe file is
// removed) or the object store's bucket answers.
func (r *Recordings) Check(ctx context.Context) error {
	select {
	case <-r.quit:
		return ErrRecordingsClosed
	default:
	}
	if r.s3 != nil {
		return r.s3.check(ctx)
	}
	f, err := os.CreateTemp(r.dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("recorder: recordings store not writable: %w", err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("probe"))
	cerr := f.Close()
	os.Remove(name)
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("recorder: recordings store not writable: %w", err)
	}
	return nil
}
