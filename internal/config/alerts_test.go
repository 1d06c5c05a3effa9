package config

import "testing"

func TestAlertAndMetricsConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"metrics listen", "metrics:\n  listen: nine\n",
			"config: f.yaml:2: metrics.listen: \"nine\" is not host:port"},
		{"unknown event", "alerts:\n  - name: a\n    events: [session.strat]\n    webhook: https://h/x\n    secret_file: /s\n",
			"config: f.yaml:3: alerts[0].events: unknown event \"session.strat\"; known: " + alertEventNames()},
		{"no events", "alerts:\n  - name: a\n    webhook: https://h/x\n    secret_file: /s\n",
			"config: f.yaml:2: alerts[0].events: list at least one event"},
		{"bad webhook", "alerts:\n  - name: a\n    events: [lock]\n    webhook: ftp://h/x\n    secret_file: /s\n",
			"config: f.yaml:4: alerts[0].webhook: \"ftp://h/x\" is not an http(s) URL"},
		{"no secret", "alerts:\n  - name: a\n    events: [lock]\n    webhook: https://h/x\n",
			"config: f.yaml:2: alerts[0].secret_file: required: every delivery is signed with it"},
		{"bad format", "alerts:\n  - name: a\n    events: [lock]\n    webhook: https://h/x\n    format: xml\n    secret_file: /s\n",
			"config: f.yaml:5: alerts[0].format: \"xml\": want json or slack"},
		{"twice", "alerts:\n  - {name: a, events: [lock], webhook: \"https://h\", secret_file: /s}\n  - {name: a, events: [lock], webhook: \"https://h\", secret_file: /s}\n",
			"config: f.yaml:3: alerts[1].name: alert \"a\" is defined twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}
