package config

import (
	"strings"
	"testing"
)

func TestRecordingS3Config(t *testing.T) {
	c, err := Parse("f.yaml", []byte("data_dir: /x\n"))
	if err != nil || c.Recording.S3.Enabled() {
		t.Fatalf("default recording.s3 = %+v, %v (want off: local directory)", c.Recording.S3, err)
	}
	c, err = Parse("f.yaml", []byte("recording:\n  s3:\n    endpoint: http://127.0.0.1:7070\n    bucket: recs\n    prefix: gh/\n    region: eu-west-1\n    object_lock_days: 400\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Recording.S3; !s.Enabled() || s.Endpoint != "http://127.0.0.1:7070" || s.Bucket != "recs" || s.Prefix != "gh/" ||
		s.Region != "eu-west-1" || s.ObjectLockDays != 400 {
		t.Fatalf("recording.s3 = %+v", s)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"recording:\n  s3:\n    endpoint: http://127.0.0.1:7070\n", "recording.s3.bucket: required when other recording.s3 keys are set"},
		{"recording:\n  s3:\n    bucket: b\n    object_lock_days: -1\n", "recording.s3.object_lock_days: must not be negative"},
		{"recording:\n  s3:\n    bucket: b\n    endpoint: 127.0.0.1:7070\n", `recording.s3.endpoint: "127.0.0.1:7070" is not an http(s) URL`},
		{"recording:\n  s3:\n    bucket: b\n    prefix: /x\n", `recording.s3.prefix: "/x" must not start with /`},
		{"recording:\n  s3:\n    bucket: b\n    secret_key: x\n", "field secret_key is not a known key"},
	} {
		_, err := Parse("f.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error\n got: %v\nwant: %s", tt.yaml, err, tt.want)
		}
	}
}
