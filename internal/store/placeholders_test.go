package store

import (
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{`SELECT '?', "a?b", ? -- what?
			/* ? */ FROM t WHERE x = ?`, `SELECT '?', "a?b", $1 -- what?
			/* ? */ FROM t WHERE x = $2`},
		{`SELECT 'it''s ?' || ?`, `SELECT 'it''s ?' || $1`},
		{`SELECT $$ ? $$, $tag$ ? $tag$, ?`, `SELECT $$ ? $$, $tag$ ? $tag$, $1`},
		{`LIKE ? ESCAPE '\'`, `LIKE $1 ESCAPE '\'`},
	} {
		if got, _ := Rebind(c.in); got != c.out {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.out)
		}
	}
}

// FuzzRebind: whatever the query, Rebind numbers placeholders from 1 without
// gaps, leaves every other byte where it was, and changes nothing inside
// literals and comments (the text outside `?` is identical).
func FuzzRebind(f *testing.F) {
	for _, s := range []string{`SELECT ? FROM t WHERE a = '?' AND b = ?`, `'unterminated ?`, `/* ? `, `-- ?`, `$x$ ? $x$ ?`, `$1 ?`, `"?" ?`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out, n := Rebind(q)
		if n == 0 {
			if out != q {
				t.Fatalf("no placeholders but %q became %q", q, out)
			}
			return
		}
		if n > strings.Count(q, "?") {
			t.Fatalf("%d placeholders numbered in a query with %d '?'", n, strings.Count(q, "?"))
		}
		// Undo the numbering in order: the result must be the input.
		back := out
		for i := n; i >= 1; i-- {
			tok := "$" + itoa(i)
			j := strings.LastIndex(back, tok)
			if j < 0 {
				t.Fatalf("$%d missing from %q", i, out)
			}
			back = back[:j] + "?" + back[j+len(tok):]
		}
		if strings.Count(back, "?") != strings.Count(q, "?") || len(back) != len(q) {
			t.Fatalf("%q -> %q does not map back (%q)", q, out, back)
		}
	})
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
