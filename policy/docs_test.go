package policy

import (
	"os"
	"strings"
	"testing"
)

// TestDocsWorkedExample keeps docs/policy.md honest: its example
// configuration parses and validates, and every expectation listed under it
// holds.
func TestDocsWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	yaml := block(t, string(doc), "<!-- policy-example: ")
	tests := block(t, string(doc), "<!-- policy-example-test -->")
	cfg := mustParse(t, yaml)
	if err := Validate(cfg); err != nil {
		t.Fatal(err)
	}
	e := New(cfg)
	targets := map[string]Target{
		"dev-1":     {Name: "dev-1", Labels: map[string]string{"env": "dev"}},
		"db-1":      {Name: "db-1", Labels: map[string]string{"env": "prod", "role": "db"}},
		"billing-1": {Name: "billing-1", Labels: map[string]string{"env": "prod"}},
	}
	exps, err := ParseExpectations(strings.NewReader(tests))
	if err != nil {
		t.Fatal(err)
	}
	if len(exps) < 10 {
		t.Fatalf("only %d expectations found", len(exps))
	}
	for _, x := range exps {
		req := x.Request
		req.Target = targets[req.Target.Name]
		if d := e.Check(req); d.Allowed != x.Allow {
			t.Errorf("%s: got %v (%s)", x.Text, d.Allowed, d.Reason)
		}
	}
}

// block returns the fenced block following marker in doc.
func block(t *testing.T, doc, marker string) string {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("marker %q not found", marker)
	}
	rest := doc[i:]
	start := strings.Index(rest, "```")
	rest = rest[start:]
	rest = rest[strings.Index(rest, "\n")+1:]
	end := strings.Index(rest, "```")
	return rest[:end]
}
