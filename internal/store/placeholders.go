package store

import (
	"strconv"
	"strings"
)

// Rebind rewrites SQLite-style `?` placeholders to PostgreSQL's numbered
// `$1, $2, ...`, leaving a `?` alone inside a string literal ('...'), a
// quoted identifier ("..."), a dollar-quoted string ($tag$...$tag$), a line
// comment (-- ...) or a block comment (/* ... */). Every query Gatehouse runs
// is written once, with `?`; the PostgreSQL engine rewrites it on the way to
// the server, so no SQL is built from strings per engine.
//
// It returns the rewritten query and how many placeholders it numbered.
func Rebind(query string) (string, int) {
	if !strings.ContainsRune(query, '?') {
		return query, 0
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := skipQuoted(query, i, c)
			b.WriteString(query[i:j])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			end := len(query)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(query[i:end])
			i = end
		case c == '$':
			j := skipDollarQuoted(query, i)
			b.WriteString(query[i:j])
			i = j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), n
}

// skipQuoted returns the index just past the literal opened by q at i; a
// doubled quote inside stands for itself. An unterminated literal runs to the
// end (the server rejects it).
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipDollarQuoted returns the index past a dollar-quoted string starting at
// i ($$...$$ or $tag$...$tag$), or i+1 when the $ does not open one (for
// example $1).
func skipDollarQuoted(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' ||
		j > i+1 && s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return i + 1
	}
	tag := s[i : j+1]
	end := strings.Index(s[j+1:], tag)
	if end < 0 {
		return len(s)
	}
	return j + 1 + end + len(tag)
}
