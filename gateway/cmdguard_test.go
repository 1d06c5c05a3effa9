package gateway

import "testing"

// A line the shell continues is checked joined to the next, as the shell
// will run it: `rm \` then `-rf x` is `rm -rf x`.
func TestContinuedLines(t *testing.T) {
	cases := []struct {
		text string
		want bool
	}{
		{`rm \`, true},
		{`rm \\`, false},
		{`echo 'a`, true},
		{`echo "a \" b`, true},
		{`echo "a" 'b'`, false},
		{`ls |`, true},
		{`true &&`, true},
		{`false ||  `, true},
		{`echo $(date`, true},
		{"echo `date", true},
		{`echo $(date) (x)`, false},
		{`rm -rf x`, false},
		{`echo it's`, true},
	}
	for _, c := range cases {
		if got := continues(c.text); got != c.want {
			t.Errorf("continues(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if got := joinContinued(`rm \`, "-rf x"); got != "rm -rf x" {
		t.Errorf("backslash join %q", got)
	}
	if got := joinContinued(`echo 'a`, "b'; rm -rf x"); got != "echo 'a\nb'; rm -rf x" {
		t.Errorf("quote join %q", got)
	}
}
