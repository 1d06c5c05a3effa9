package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Retention says how long evidence is kept. Retention never deletes a single
// event or recording: it removes only whole ranges older than the age, after
// a signed audit.prune event naming them (docs/audit.md).
type Retention struct {
	// Recordings is how long a recording is kept after its session ended
	// ("400d"). Zero keeps recordings forever.
	Recordings Age `yaml:"recordings"`
	// Audit is how long audit events are kept ("7y"). Zero keeps them
	// forever.
	Audit Age `yaml:"audit"`
}

// Age is a duration that also accepts days ("400d") and years ("7y", 365
// days each) besides Go durations ("36h").
type Age time.Duration

// minAge is the shortest retention accepted: anything shorter is more likely
// a typo ("7" for "7y") than a policy.
const minAge = 24 * time.Hour

// ParseAge parses "400d", "7y", "2w" or a Go duration.
func ParseAge(s string) (Age, error) {
	s = strings.TrimSpace(s)
	units := map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}
	if u, ok := units[s[max(len(s)-1, 0):]]; ok && len(s) > 1 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 31)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of %s", s, map[string]string{"d": "days", "w": "weeks", "y": "years"}[s[len(s)-1:]])
		}
		return Age(time.Duration(n) * u), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: use days (400d), weeks (2w), years (7y) or hours (36h)", s)
	}
	return Age(d), nil
}

// UnmarshalYAML reads an Age from a scalar.
func (a *Age) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" || n.Value == "0" {
		*a = 0
		return nil
	}
	v, err := ParseAge(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*a = v
	return nil
}

// Duration returns a as a time.Duration.
func (a Age) Duration() time.Duration { return time.Duration(a) }

func (c *Config) validateRetention() error {
	for _, r := range []struct {
		key string
		age Age
	}{{"retention.recordings", c.Retention.Recordings}, {"retention.audit", c.Retention.Audit}} {
		if r.age != 0 && r.age.Duration() < minAge {
			return c.fail(r.key, "%v is shorter than a day; zero (or leaving it out) keeps everything", r.age.Duration())
		}
	}
	return nil
}
