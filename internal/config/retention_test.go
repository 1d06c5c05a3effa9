package config

import (
	"testing"
	"time"
)

func TestRetentionAges(t *testing.T) {
	c, err := Parse("f.yaml", []byte("retention:\n  recordings: 400d\n  audit: 7y\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.Recordings.Duration() != 400*24*time.Hour || c.Retention.Audit.Duration() != 7*365*24*time.Hour {
		t.Fatalf("retention = %+v", c.Retention)
	}
	c, err = Parse("f.yaml", []byte("data_dir: /x\n"))
	if err != nil || c.Retention.Recordings != 0 || c.Retention.Audit != 0 {
		t.Fatalf("default retention = %+v, %v (want zero: keep forever)", c.Retention, err)
	}
	for _, tt := range []struct{ yaml, want string }{
		{"retention:\n  audit: 7\n", "config: f.yaml:2: \"7\": use days (400d), weeks (2w), years (7y) or hours (36h)"},
		{"retention:\n  audit: 1.5y\n", "config: f.yaml:2: \"1.5y\" is not a number of years"},
		{"retention:\n  recordings: 2h\n", "config: f.yaml:2: retention.recordings: 2h0m0s is shorter than a day; zero (or leaving it out) keeps everything"},
		{"retention:\n  forever: true\n", "config: f.yaml:2: field forever is not a known key in Retention"},
	} {
		_, err := Parse("f.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error\n got: %v\nwant: %s", tt.yaml, err, tt.want)
		}
	}
}
