package recorder

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/store"
)

// TestSessionListCommandContains checks "command contains" through the
// trigram index (3+ characters) and the LIKE fallback (shorter), with text
// that is special to FTS5 queries or LIKE, and that deleting a command takes
// it out of the index.
func TestSessionListCommandContains(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cmds := map[string][]string{
		"s1": {"systemctl status nginx", `echo "hi" AND x*`},
		"s2": {"SYSTEMCTL restart postgres", "ls -la /var/log"},
		"s3": {"grep -r 100% /etc", "rm -rf /tmp/x_y"},
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	for id, texts := range cmds {
		i++
		rec := "rec-" + id
		if _, err := db.Exec(`INSERT INTO sessions(id, user_name, client_addr, client_version, key_fingerprint, user_cert_serial, target,
			target_kind, login, mode, kind, start_at, recording_id) VALUES (?, 'u', 'a', 'v', 'fp', 1, 't', 'ssh', 'root', 'direct', 'shell', ?, ?)`,
			id, start.Add(time.Duration(i)*time.Minute).UnixNano(), rec); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO recordings(id, session_id, user_name, target, login, file, wrapped_key, started, cols, rows,
			interactive) VALUES (?, ?, 'u', 't', 'root', 'f', x'00', 0, 80, 24, 1)`, rec, id); err != nil {
			t.Fatal(err)
		}
		for seq, text := range texts {
			if _, err := db.Exec(`INSERT INTO recording_commands(recording_id, seq, offset_us, time, source, text) VALUES (?, ?, 0, 0, 'screen', ?)`,
				rec, seq+1, text); err != nil {
				t.Fatal(err)
			}
		}
	}
	ss := NewSessionStore(db.DB)
	find := func(text string) []string {
		t.Helper()
		rows, err := ss.List(context.Background(), SessionFilter{Command: text})
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.ID)
		}
		sort.Strings(ids)
		return ids
	}
	cases := []struct {
		text string
		want []string
	}{
		{"systemctl", []string{"s1", "s2"}}, // case-insensitive, as LIKE was
		{"status ngin", []string{"s1"}},     // a substring across a space
		{"tatus", []string{"s1"}},           // inside a word
		{`"hi" AND`, []string{"s1"}},        // FTS5 query syntax is literal text
		{"x*", []string{"s1"}},              // short: LIKE fallback, '*' literal
		{"100%", []string{"s3"}},            // '%' literal
		{"x_y", []string{"s3"}},             // '_' literal
		{"_y", []string{"s3"}},
		{"-l", []string{"s2"}},
		{"nginx restart", nil},
		{"zzz", nil},
	}
	for _, c := range cases {
		if got := find(c.text); !equalStrings(got, c.want) {
			t.Errorf("command contains %q: sessions %v, want %v", c.text, got, c.want)
		}
	}
	if _, err := db.Exec(`DELETE FROM recording_commands WHERE recording_id = 'rec-s1' AND seq = 1`); err != nil {
		t.Fatal(err)
	}
	if got := find("status ngin"); got != nil {
		t.Errorf("after deleting the command, search still finds %v", got)
	}
	if got := find(`"hi"`); !equalStrings(got, []string{"s1"}) {
		t.Errorf("deleting one command removed its neighbour from the index: %v", got)
	}
	if _, err := db.Exec(`UPDATE recording_commands SET text = 'uptime' WHERE recording_id = 'rec-s2' AND seq = 2`); err != nil {
		t.Fatal(err)
	}
	if got, got2 := find("uptime"), find("/var/log"); !equalStrings(got, []string{"s2"}) || got2 != nil {
		t.Errorf("after an update: uptime in %v, /var/log in %v", got, got2)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
