package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Options puts recordings in an S3-compatible bucket instead of the
// local directory. Credentials come from the standard AWS chain
// (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, shared files, instance role).
//
// A recording is a series of segment objects PREFIX<id>/<seq>: each write
// of sealed records (every flush interval, or when 256 KiB are buffered)
// is one PUT of its own object, so an instance that dies loses at most the
// records of one flush interval, exactly as with a local file. Multipart
// upload does not serve here: its parts must be at least 5 MiB and an
// upload that was never completed is not readable, so a crash would lose
// everything since the last 5 MiB. Reading concatenates the segments in
// order; the record counter nonces make a missing or reordered segment
// fail authentication.
type S3Options struct {
	// Endpoint of an S3-compatible server; empty means AWS. When set,
	// requests use path-style addressing.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every key (e.g. "recordings/").
	Prefix string
	Region string
	// ObjectLockDays, when > 0, writes every object under COMPLIANCE
	// retention for that many days; the bucket must have object lock
	// enabled (and so versioning).
	ObjectLockDays int
	// Timeout bounds one request; zero means 15s.
	Timeout time.Duration
}

// s3Store holds recordings as segment objects.
type s3Store struct {
	c    *s3.Client
	o    S3Options
	now  func() time.Time
	base string // "s3:" + bucket + "/" + prefix, the file column's prefix
}

// s3FilePrefix marks a recordings row whose file lives in object storage.
const s3FilePrefix = "s3:"

func openS3Store(ctx context.Context, o S3Options, now func() time.Time) (*s3Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("recorder: recording.s3.bucket is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("recorder: object store credentials: %w", err)
	}
	c := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
	})
	st := &s3Store{c: c, o: o, now: now, base: s3FilePrefix + o.Bucket + "/" + o.Prefix}
	if err := st.check(ctx); err != nil {
		return nil, err
	}
	if o.ObjectLockDays > 0 {
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		lc, err := c.GetObjectLockConfiguration(cctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(o.Bucket)})
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied" {
			return nil, fmt.Errorf("recorder: recording.s3.object_lock_days is set but these credentials may not read bucket %s's object lock configuration (grant s3:GetBucketObjectLockConfiguration, see docs/recordings.md): %v", o.Bucket, err)
		}
		if err != nil || lc.ObjectLockConfiguration == nil || lc.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
			return nil, fmt.Errorf("recorder: recording.s3.object_lock_days is set but bucket %s does not have object lock enabled (create it with object lock): %v", o.Bucket, err)
		}
	}
	return st, nil
}

// check reaches the bucket (HeadBucket).
func (st *s3Store) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, st.o.Timeout)
	defer cancel()
	if _, err := st.c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(st.o.Bucket)}); err != nil {
		// HEAD answers carry no error body, so a refusal is only its status.
		var hs interface{ HTTPStatusCode() int }
		if errors.As(err, &hs) && hs.HTTPStatusCode() == 403 {
			return fmt.Errorf("recorder: object store bucket %s refuses these credentials (AccessDenied: grant s3:ListBucket, see docs/recordings.md): %w", st.o.Bucket, err)
		}
		return fmt.Errorf("recorder: object store bucket %s unreachable: %w", st.o.Bucket, err)
	}
	return nil
}

func (st *s3Store) dirKey(id string) string { return st.o.Prefix + id + "/" }

func (st *s3Store) segKey(id string, seq int) string {
	return fmt.Sprintf("%s%010d", st.dirKey(id), seq)
}

// put writes one segment object (under retention when configured).
func (st *s3Store) put(id string, seq int, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), st.o.Timeout)
	defer cancel()
	in := &s3.PutObjectInput{Bucket: aws.String(st.o.Bucket), Key: aws.String(st.segKey(id, seq)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType: aws.String("application/octet-stream"),
		// Never overwrite: a second writer of the same recording (a live
		// instance and one that sealed it as crashed) fails instead.
		IfNoneMatch: aws.String("*")}
	if d := st.o.ObjectLockDays; d > 0 {
		in.ObjectLockMode = types.ObjectLockModeCompliance
		in.ObjectLockRetainUntilDate = aws.Time(st.now().Add(time.Duration(d) * 24 * time.Hour))
	}
	if _, err := st.c.PutObject(ctx, in); err != nil {
		return fmt.Errorf("recorder: object store: write %s: %w", st.segKey(id, seq), err)
	}
	return nil
}

// segments lists a recording's segment keys in order.
func (st *s3Store) segments(ctx context.Context, id string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(st.c, &s3.ListObjectsV2Input{Bucket: aws.String(st.o.Bucket), Prefix: aws.String(st.dirKey(id))})
	for p.HasMorePages() {
		cctx, cancel := context.WithTimeout(ctx, st.o.Timeout)
		page, err := p.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("recorder: object store: list recording %s: %w", id, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	for i, k := range keys { // keys are zero-padded: listing order is segment order
		if k != st.segKey(id, i) {
			return nil, fmt.Errorf("%w: recording %s: segment %d missing (found %s)", ErrRecordingCorrupt, id, i, k)
		}
	}
	return keys, nil
}

// open returns a reader over a recording's segments, in order.
func (st *s3Store) open(ctx context.Context, id string) (io.ReadCloser, int, error) {
	keys, err := st.segments(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if len(keys) == 0 {
		return nil, 0, fmt.Errorf("%w: recording %s: no objects in the object store", ErrRecordingCorrupt, id)
	}
	return &segmentReader{ctx: ctx, st: st, keys: keys}, len(keys), nil
}

// segmentReader reads segment objects one after the other.
type segmentReader struct {
	ctx  context.Context
	st   *s3Store
	keys []string
	cur  io.ReadCloser
}

func (sr *segmentReader) Read(p []byte) (int, error) {
	for {
		if sr.cur == nil {
			if len(sr.keys) == 0 {
				return 0, io.EOF
			}
			out, err := sr.st.c.GetObject(sr.ctx, &s3.GetObjectInput{Bucket: aws.String(sr.st.o.Bucket), Key: aws.String(sr.keys[0])})
			if err != nil {
				return 0, fmt.Errorf("recorder: object store: read %s: %w", sr.keys[0], err)
			}
			sr.cur, sr.keys = out.Body, sr.keys[1:]
		}
		n, err := sr.cur.Read(p)
		if err == io.EOF {
			sr.cur.Close()
			sr.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (sr *segmentReader) Close() error {
	if sr.cur != nil {
		return sr.cur.Close()
	}
	return nil
}

// segmentWriter is a recording's sink in the object store: every Write
// (one sealed record, or the magic with the header record) is one segment
// object. The magic is held back until the header record joins it.
type segmentWriter struct {
	st   *s3Store
	id   string
	seq  int
	hold []byte
	h    hash.Hash
}

func newSegmentWriter(st *s3Store, id string, seq int) *segmentWriter {
	return &segmentWriter{st: st, id: id, seq: seq, h: sha256.New()}
}

func (w *segmentWriter) Write(p []byte) (int, error) {
	if w.seq == 0 && len(w.hold) == 0 && string(p) == recMagic {
		w.hold = append([]byte(nil), p...)
		return len(p), nil
	}
	data := p
	if len(w.hold) > 0 {
		data = append(w.hold, p...)
	}
	if err := w.st.put(w.id, w.seq, data); err != nil {
		return 0, err
	}
	w.hold = nil
	w.h.Write(data)
	w.seq++
	return len(p), nil
}

// Sync is a no-op: every Write is a completed PUT.
func (w *segmentWriter) Sync() error { return nil }

// Close is a no-op: nothing stays open.
func (w *segmentWriter) Close() error { return nil }

// sum is the SHA-256 of everything written, the recording's hash.
func (w *segmentWriter) sum() string { return fmt.Sprintf("%x", w.h.Sum(nil)) }

// isS3File reports whether a recordings row's file is in object storage.
func isS3File(file string) bool { return strings.HasPrefix(file, s3FilePrefix) }
