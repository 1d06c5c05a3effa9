package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/testenv"
)

// docsIAMPolicy reads the minimal IAM policy out of docs/recordings.md, so
// the test exercises exactly what the operator is told to grant.
func docsIAMPolicy(t *testing.T) map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "recordings.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)Minimal IAM policy.*?```json\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/recordings.md has no minimal IAM policy block")
	}
	var p map[string]any
	if err := json.Unmarshal(m[1], &p); err != nil {
		t.Fatalf("docs/recordings.md IAM policy is not JSON: %v", err)
	}
	return p
}

// asBucketPolicy turns the identity policy into a bucket policy for one
// account (versitygw has bucket policies, not identity policies), leaving
// out the named actions.
func asBucketPolicy(t *testing.T, p map[string]any, access string, without ...string) string {
	t.Helper()
	drop := map[string]bool{}
	for _, a := range without {
		drop[a] = true
	}
	out := map[string]any{"Version": p["Version"]}
	var sts []any
	for _, s := range p["Statement"].([]any) {
		st := map[string]any{}
		for k, v := range s.(map[string]any) {
			st[k] = v
		}
		var acts []any
		for _, a := range st["Action"].([]any) {
			if !drop[a.(string)] {
				acts = append(acts, a)
			}
		}
		if len(acts) == 0 {
			continue
		}
		st["Action"] = acts
		st["Principal"] = map[string]any{"AWS": access}
		sts = append(sts, st)
	}
	out["Statement"] = sts
	b, _ := json.Marshal(out)
	return string(b)
}

// iamWorld is a versitygw with internal IAM, the bucket and prefix the docs
// name (object lock on), owned by root, and an account "gatehouse" whose
// only access is the bucket policy the test sets.
type iamWorld struct {
	gw     *testenv.VersityGW
	dir    string
	db     *store.DB
	policy map[string]any
}

const iamAccess, iamSecret = "gatehouse-recorder", "gatehouse-recorder-secret-0123456789"

func newIAMWorld(t *testing.T) *iamWorld {
	t.Helper()
	gw := testenv.StartVersityGWIAM(t)
	gw.CreateBucket(t, "gatehouse-recordings", true)
	gw.CreateUser(t, iamAccess, iamSecret)
	for kv, v := range map[string]string{"AWS_ACCESS_KEY_ID": iamAccess, "AWS_SECRET_ACCESS_KEY": iamSecret,
		"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(kv, v) // Gatehouse uses the standard credential chain, here the account's keys
	}
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &iamWorld{gw: gw, dir: dir, db: db, policy: docsIAMPolicy(t)}
}

func (w *iamWorld) setPolicy(t *testing.T, without ...string) {
	t.Helper()
	_, err := w.gw.Client().PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{
		Bucket: aws.String("gatehouse-recordings"), Policy: aws.String(asBucketPolicy(t, w.policy, iamAccess, without...))})
	if err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}
}

func (w *iamWorld) open(flush time.Duration) (*Recordings, error) {
	kr, _ := secrets.NewKeyring(make([]byte, 32))
	return OpenRecordings(filepath.Join(w.dir, "recordings"), w.db, kr, RecordingOptions{FlushInterval: flush,
		S3: &S3Options{Endpoint: w.gw.Endpoint, Bucket: "gatehouse-recordings", Prefix: "recordings/",
			Region: "us-east-1", ObjectLockDays: 1}})
}

// record writes, seals and replays one recording with the account's
// credentials; it returns the first error a user of Gatehouse would meet.
func (w *iamWorld) record(t *testing.T, session string) (string, error) {
	t.Helper()
	r, err := w.open(0)
	if err != nil {
		return "", err
	}
	defer r.Close()
	rec, err := r.Start(SessionInfo{SessionID: session, User: "alice", Target: "db-1", Login: "root", Interactive: true})
	if err != nil {
		return "", err
	}
	rec.Output([]byte("recorded under the minimal policy\r\n"))
	sum, err := rec.Close("exited")
	if err != nil {
		return "", err
	}
	if !sum.Complete {
		return "", errors.New("recording sealed incomplete: " + sum.Reason)
	}
	if err := r.Check(context.Background()); err != nil {
		return "", err
	}
	rc, err := r.OpenCast(context.Background(), rec.ID(), false)
	if err != nil {
		return "", err
	}
	cast, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return "", err
	}
	if !strings.Contains(string(cast), `"recorded under the minimal policy\r\n"`) {
		return "", errors.New("replay lacks the recorded output: " + string(cast))
	}
	return rec.ID(), nil
}

// TestS3MinimalIAMPolicy: the policy docs/recordings.md gives the operator is
// enough for Gatehouse to record, seal, check readiness, replay and recover a
// crashed recording in an object-locked bucket, and it grants no delete —
// an account holding only it cannot remove a recording's object, neither a
// version nor by a delete marker. Each action the docs list is needed: with
// any one left out, recording fails (so the test proves the policy, not the
// server's defaults).
func TestS3MinimalIAMPolicy(t *testing.T) {
	w := newIAMWorld(t)

	// No policy: the account has no access at all (deny by default).
	if _, err := w.record(t, "s-none"); err == nil {
		t.Fatal("an account with no bucket policy recorded into the bucket")
	}

	w.setPolicy(t)
	id, err := w.record(t, "s-ok")
	if err != nil {
		t.Fatalf("recording under the documented policy: %v", err)
	}

	// Crash recovery under the same policy: flushed segments, no seal, then
	// another process seals the recording incomplete.
	r, err := w.open(20 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.Start(SessionInfo{SessionID: "s-crash", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("before the crash\r\n"))
	waitFlushedSegment(t, r, rec.ID()) // the flusher writes it as its own segment
	r.Close()
	r2, err := w.open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if recs, err := r2.Recover(context.Background()); err != nil || len(recs) != 1 {
		t.Fatalf("recovery under the documented policy: %+v %v", recs, err)
	}

	// The account cannot delete: not a version, not by a delete marker.
	key := r2.s3.segKey(id, 0)
	c := w.gw.ClientAs(iamAccess, iamSecret)
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("gatehouse-recordings"), Key: aws.String(key)})
	if err != nil || head.VersionId == nil {
		t.Fatalf("head %s: %+v %v", key, head, err)
	}
	for _, in := range []*s3.DeleteObjectInput{
		{Bucket: aws.String("gatehouse-recordings"), Key: aws.String(key), VersionId: head.VersionId},
		{Bucket: aws.String("gatehouse-recordings"), Key: aws.String(key)},
	} {
		_, err := c.DeleteObject(context.Background(), in)
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
			t.Fatalf("delete (version %v) with the documented policy: %v, want AccessDenied", in.VersionId != nil, err)
		}
	}
	if _, err := c.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String("gatehouse-recordings"),
		Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + iamAccess +
			`"},"Action":["s3:DeleteObject"],"Resource":"arn:aws:s3:::gatehouse-recordings/*"}]}`)}); err == nil {
		t.Fatal("the account could rewrite the bucket policy to grant itself delete")
	}

	// Every action listed is needed by some step.
	for _, action := range []string{"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketObjectLockConfiguration", "s3:PutObjectRetention"} {
		w.setPolicy(t, action)
		_, err := w.record(t, "s-without-"+strings.TrimPrefix(action, "s3:"))
		if err == nil {
			t.Errorf("recorded and replayed without %s: the documented policy lists an action it does not need", action)
			continue
		}
		t.Logf("without %s: %v", action, err)
		if !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("without %s the operator is not told access was denied: %v", action, err)
		}
	}
}

// TestReadFailureIsNotATornTail: a store that fails in the middle of a
// recording (a disk error, an object store refusing a GET) is reported as a
// read failure, never as a torn or forged record — otherwise recovery would
// cut the recording short at the failure and seal what is left as the whole.
func TestReadFailureIsNotATornTail(t *testing.T) {
	r, _, _ := newRecordings(t, RecordingOptions{})
	rec, err := r.Start(SessionInfo{SessionID: "s-io", User: "alice", Target: "db-1", Login: "root"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		rec.Output(bytes.Repeat([]byte("x"), 4096))
		rec.flushIfDirty()
	}
	if _, err := rec.Close("exited"); err != nil {
		t.Fatal(err)
	}
	m, err := r.row(context.Background(), rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	key, err := r.key(m)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(r.dir, filepath.Base(m.file)))
	if err != nil {
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	for _, cut := range []int{0, 3, len(recMagic) + 2, len(raw) / 2} {
		rr, err := newRecordReader(io.MultiReader(bytes.NewReader(raw[:cut]), iotest.ErrReader(eio)), key, m.ID)
		for err == nil {
			_, err = rr.next()
		}
		if !errors.Is(err, eio) || errors.Is(err, ErrRecordingCorrupt) || err == errTornTail {
			t.Fatalf("read failing after %d bytes: %v, want the read error", cut, err)
		}
	}
	// The same bytes simply ending there are a torn tail, as before.
	rr, err := newRecordReader(bytes.NewReader(raw[:len(raw)/2]), key, m.ID)
	for err == nil {
		_, err = rr.next()
	}
	if err != errTornTail {
		t.Fatalf("recording ending at half: %v, want a torn tail", err)
	}
}
