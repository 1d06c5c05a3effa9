package web

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/websocket"

	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/usererr"
	"github.com/gatehouse/gatehouse/policy"
	"github.com/gatehouse/gatehouse/recorder"
	"github.com/gatehouse/gatehouse/recorder/audit"
)

// Terminator ends live sessions (the SSH gateway implements it).
type Terminator interface {
	Terminate(sessionID, reason string) bool
	TerminateUser(user, reason string) int
}

func (s *Server) uiRoutes() {
	s.mux.Handle("GET /overview", s.requireAuditor(s.overviewPage))
	s.mux.Handle("GET /sessions", s.requireViewer(s.sessionsPage))
	s.mux.Handle("GET /sessions/{id}", s.requireViewer(s.replayPage))
	s.mux.Handle("GET /sessions/{id}/cast", s.requireViewer(s.castFile))
	s.mux.Handle("GET /sessions/{id}/live", s.requireViewer(s.livePage))
	s.mux.Handle("GET /sessions/{id}/stream", s.requireViewer(s.liveStream))
	s.mux.Handle("POST /sessions/{id}/terminate", s.requireAdmin("end sessions", s.terminate))
	s.mux.Handle("GET /audit", s.requireAuditor(s.auditPage))
	s.mux.Handle("GET /audit/export", s.requireAuditor(s.auditExport))
	s.mux.Handle("GET /admin/targets", s.requireAuditor(s.targetsPage))
	s.mux.Handle("GET /admin/policy", s.requireAuditor(s.policyPage))
	s.mux.Handle("GET /admin/users", s.requireAuditor(s.usersPage))
	s.mux.Handle("POST /admin/users/{name}/reset-totp", s.requireAdmin("reset TOTP", s.resetTOTP))
	s.mux.Handle("POST /admin/users/{name}/lock", s.requireAdmin("lock users", s.lockUser))
	s.mux.Handle("POST /admin/users/{name}/unlock", s.requireAdmin("unlock users", s.unlockUser))
}

func (s *Server) uiBase(v viewer, title string) map[string]any {
	d := s.base(v.ws, title)
	d["Admin"], d["Auditor"] = v.perms.Admin, v.perms.Auditor
	return d
}

func notFound(w http.ResponseWriter) { http.Error(w, "not found", http.StatusNotFound) }

// loadSession returns a session the viewer may see; others are "not found"
// (never "forbidden": ids of other users' sessions are not confirmed).
func (s *Server) loadSession(w http.ResponseWriter, r *http.Request, v viewer) (recorder.Session, bool) {
	if s.opts.Sessions == nil {
		notFound(w)
		return recorder.Session{}, false
	}
	sess, err := s.opts.Sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil || (!v.seesAll() && sess.User != v.ws.id.User) {
		notFound(w)
		return recorder.Session{}, false
	}
	return sess, true
}

func parseTime(s string) time.Time {
	if t, err := time.Parse("2006-01-02T15:04", s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC()
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func (s *Server) sessionsPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	q := r.URL.Query()
	f := recorder.SessionFilter{User: q.Get("user"), Target: q.Get("target"), Login: q.Get("login"), Command: q.Get("command"),
		Since: parseTime(q.Get("since")), Until: parseTime(q.Get("until")), Before: parseTime(q.Get("before")), Limit: 50}
	switch q.Get("status") {
	case "live":
		f.Live = true
	case "ended":
		f.Ended = true
	}
	if !v.seesAll() {
		f.User = v.ws.id.User
	}
	rows, err := s.opts.Sessions.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not list sessions.", err)
		return
	}
	d := s.uiBase(v, "Sessions")
	d["Rows"], d["Q"] = rows, q
	if len(rows) == f.Limit {
		nq := r.URL.Query()
		nq.Set("before", rows[len(rows)-1].Start.Format(time.RFC3339Nano))
		d["Next"] = "/sessions?" + nq.Encode()
	}
	s.render(w, "sessions.html", d)
}

// durationOf formats a session's duration for the list.
func durationOf(st, end time.Time) string {
	if end.IsZero() {
		return "live"
	}
	return end.Sub(st).Round(time.Second).String()
}

// kindLabel names a session's kind for people: a shell fed a script on
// stdin ("ssh host bash < script") is a shell, not a file transfer.
func kindLabel(kind, command string) string {
	switch {
	case kind == "exec" && recorder.ShellReadsStdin(command):
		return "shell (script on stdin)"
	case kind == "shell":
		return "shell"
	case strings.HasPrefix(kind, "subsystem:"):
		return strings.TrimPrefix(kind, "subsystem:") + " (file transfer)"
	}
	return kind
}

func (s *Server) replayPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	sess, ok := s.loadSession(w, r, v)
	if !ok {
		return
	}
	d := s.uiBase(v, "Session "+sess.ID)
	d["S"], d["CSS"] = sess, []string{"/static/vendor/asciinema-player.css"}
	if sess.RecordingID != "" && s.opts.Recordings != nil {
		if m, err := s.opts.Recordings.Meta(r.Context(), sess.RecordingID); err == nil {
			d["Rec"] = m
			d["Poster"] = s.posterTime(r.Context(), sess.RecordingID)
		}
	}
	evs, _ := s.opts.AuditLog.Query(r.Context(), audit.Filter{SessionID: sess.ID, Limit: 1000})
	var files, other []audit.StoredEvent
	for _, ev := range evs {
		switch {
		case ev.Type == audit.EventFile:
			files = append(files, ev)
		case ev.Type != audit.EventCommand:
			other = append(other, ev)
		}
	}
	d["Files"], d["Events"] = files, other
	s.render(w, "replay.html", d)
}

// playerIdleLimit is the replay player's idle_time_limit (seconds); it
// must match replay.js.
const playerIdleLimit = 2.0

// posterTime is where the player's poster frame is taken: the last output,
// on the player's timeline (pauses longer than playerIdleLimit shortened),
// as an asciinema-player "npt:" poster. The page then opens on the
// session's final screen instead of a black box.
func (s *Server) posterTime(ctx context.Context, recID string) string {
	rc, err := s.opts.Recordings.OpenCast(ctx, recID, false)
	if err != nil {
		return ""
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var prev, at, lastOut float64
	for first := true; sc.Scan(); first = false {
		var ev []json.RawMessage
		if first || json.Unmarshal(sc.Bytes(), &ev) != nil || len(ev) < 2 {
			continue
		}
		var t float64
		var typ string
		if json.Unmarshal(ev[0], &t) != nil || json.Unmarshal(ev[1], &typ) != nil {
			continue
		}
		at += min(max(t-prev, 0), playerIdleLimit)
		prev = t
		if typ == "o" {
			lastOut = at
		}
	}
	return fmt.Sprintf("npt:%.3f", lastOut)
}

// castFile serves the decrypted recording (output only) to the player and
// audits the access. Terminal output is served as JSON data, never HTML.
func (s *Server) castFile(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	sess, ok := s.loadSession(w, r, v)
	if !ok || sess.RecordingID == "" {
		if ok {
			notFound(w)
		}
		return
	}
	s.audit(r, audit.Event{Type: audit.EventRecordingAccess, User: v.ws.id.User, UserIssuer: v.ws.id.Issuer,
		UserSubject: v.ws.id.Subject, SessionID: sess.ID, Target: sess.Target, Login: sess.Login, Reason: "replay in the web UI",
		Details: map[string]any{"recording": sess.RecordingID, "recorded_user": sess.User}})
	rc, err := s.opts.Recordings.OpenCast(r.Context(), sess.RecordingID, false)
	if err != nil {
		s.log.Error("open recording", "recording", sess.RecordingID, "err", err)
		http.Error(w, "the recording cannot be read", http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("Content-Disposition", "attachment; filename=\""+sess.ID+".cast\"")
	io.Copy(w, rc)
}

func (s *Server) livePage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	sess, ok := s.loadSession(w, r, v)
	if !ok {
		return
	}
	d := s.uiBase(v, "Live: "+sess.ID)
	d["S"], d["CSS"] = sess, []string{"/static/vendor/xterm.css"}
	if sess.RecordingID != "" && s.opts.Recordings != nil {
		// Commands are read off the screen as the session runs: the
		// ones typed so far.
		if m, err := s.opts.Recordings.Meta(r.Context(), sess.RecordingID); err == nil {
			d["Commands"] = m.Commands
		}
	}
	s.render(w, "live.html", d)
}

// liveStream sends the live session's asciicast events over a WebSocket
// (one text message per event); the page feeds them to xterm.js, read-only.
// The viewer is authorised before the upgrade, and the upgrade is refused
// unless the Origin is this server (no cross-site WebSocket hijacking).
func (s *Server) liveStream(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	sess, ok := s.loadSession(w, r, v)
	if !ok {
		return
	}
	rec := s.opts.Recordings.Live(sess.ID)
	// A live session of another instance is followed in the shared
	// recording store (recorder.Follow).
	elsewhere := rec == nil && sess.End.IsZero() && sess.RecordingID != ""
	if rec != nil || elsewhere {
		s.audit(r, audit.Event{Type: audit.EventRecordingAccess, User: v.ws.id.User, SessionID: sess.ID, Target: sess.Target,
			Login: sess.Login, Reason: "live view in the web UI", Details: map[string]any{"recording": sess.RecordingID}})
	}
	srv := websocket.Server{
		Handshake: func(cfg *websocket.Config, req *http.Request) error {
			o, err := websocket.Origin(cfg, req)
			if err != nil || o == nil || o.Host != req.Host {
				return errors.New("web: live view from another origin")
			}
			return nil
		},
		Handler: func(ws *websocket.Conn) {
			defer ws.Close()
			if elsewhere {
				s.followElsewhere(r, ws, sess)
				return
			}
			if rec == nil {
				return // already ended: the page shows "session ended"
			}
			ch, cancel := rec.Subscribe()
			defer cancel()
			// Reads only detect the viewer leaving; the view is read-only.
			gone := make(chan struct{})
			go func() {
				io.Copy(io.Discard, ws)
				close(gone)
			}()
			for {
				select {
				case line, ok := <-ch:
					if !ok {
						return
					}
					if err := websocket.Message.Send(ws, strings.TrimRight(string(line), "\n")); err != nil {
						return
					}
				case <-gone:
					return
				case <-r.Context().Done():
					return
				}
			}
		},
	}
	srv.ServeHTTP(w, r)
}

// followElsewhere streams a session that runs on another instance from the
// shared recording store until it ends or the viewer leaves.
func (s *Server) followElsewhere(r *http.Request, ws *websocket.Conn, sess recorder.Session) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		io.Copy(io.Discard, ws) // reads only detect the viewer leaving
		cancel()
	}()
	err := s.opts.Recordings.Follow(ctx, sess.RecordingID, 0, func(line []byte) error {
		return websocket.Message.Send(ws, string(line))
	})
	if err != nil && ctx.Err() == nil {
		msg, ref := usererr.Message(err)
		s.log.Warn("live view of a session on another instance stopped", "session", sess.ID, "ref", ref, "err", err)
		// Said in the terminal, as output, before the page shows "session ended".
		line, _ := json.Marshal([]any{0, "o", "\r\n[gatehouse: live view stopped: " + msg + "]\r\n"})
		websocket.Message.Send(ws, string(line))
	}
}

func (s *Server) terminate(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	sess, ok := s.loadSession(w, r, v)
	if !ok {
		return
	}
	msg := strings.TrimSpace(r.PostFormValue("message"))
	if msg == "" {
		msg = "terminated by an administrator"
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	found := s.opts.Terminator != nil && s.opts.Terminator.Terminate(sess.ID, msg+" ("+v.ws.id.User+")")
	elsewhere := false
	if !found && sess.End.IsZero() { // running on another instance: it polls for this request
		err := s.opts.Sessions.RequestTermination(r.Context(), recorder.TerminationRequest{SessionID: sess.ID,
			Reason: msg + " (" + v.ws.id.User + ")", RequestedBy: v.ws.id.User, Created: s.opts.Now()})
		if err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, "The session could not be ended right now; try again.", err)
			return
		}
		elsewhere = true
	}
	s.audit(r, audit.Event{Type: audit.EventAdminChange, User: v.ws.id.User, SessionID: sess.ID, Target: sess.Target,
		Reason: "session terminated: " + msg, Details: map[string]any{"session_user": sess.User, "found": found,
			"requested_of_other_instance": elsewhere}})
	http.Redirect(w, r, "/sessions/"+sess.ID, http.StatusSeeOther)
}

// auditPageSize is how many events one audit page shows.
const auditPageSize = 50

func (s *Server) auditFilter(r *http.Request, v viewer) audit.Filter {
	q := r.URL.Query()
	f := audit.Filter{User: q.Get("user"), Target: q.Get("target"), Type: q.Get("type"), Text: q.Get("text"),
		Since: parseTime(q.Get("since")), Until: parseTime(q.Get("until")), Limit: auditPageSize, Desc: true}
	if id, err := strconv.ParseInt(q.Get("before_id"), 10, 64); err == nil && id > 0 {
		if ns, err := strconv.ParseInt(q.Get("before_t"), 10, 64); err == nil {
			f.BeforeID, f.BeforeTime = id, time.Unix(0, ns)
		}
	}
	return f
}

// auditFilterQuery is the page's filters without the paging keys (for the
// export links and "newest").
func auditFilterQuery(r *http.Request) url.Values {
	q := url.Values{}
	for _, k := range []string{"user", "target", "type", "text", "since", "until"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	f := s.auditFilter(r, v)
	evs, err := s.opts.AuditLog.Query(r.Context(), f)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the audit log.", err)
		return
	}
	d := s.uiBase(v, "Audit log")
	fq := auditFilterQuery(r)
	d["Events"], d["Q"], d["FilterQuery"] = evs, r.URL.Query(), fq.Encode()
	if len(evs) == f.Limit {
		last := evs[len(evs)-1]
		nq := auditFilterQuery(r)
		nq.Set("before_t", strconv.FormatInt(last.Time.UnixNano(), 10))
		nq.Set("before_id", strconv.FormatInt(last.ID, 10))
		d["Older"] = "/audit?" + nq.Encode()
	}
	if f.BeforeID > 0 {
		d["Newest"] = "/audit?" + fq.Encode()
	}
	if r.URL.Query().Get("verify") == "1" {
		rep, err := s.opts.AuditLog.Verify(r.Context())
		if err != nil {
			rep.Problem = s.visible(r, err)
		}
		d["Verify"] = rep.String()
		d["VerifyOK"] = rep.OK
	}
	d["VerifierKey"] = s.opts.AuditLog.VerifierKey()
	s.render(w, "audit.html", d)
}

// field is one detail of an audit event, for display.
type field struct{ Key, Value string }

// fields lists an event's details sorted by key, values as text.
func fields(m map[string]any) []field {
	out := make([]field, 0, len(m))
	for k, v := range m {
		out = append(out, field{k, fmt.Sprint(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// auditExport streams the same signed bundle as `gatehouse audit export`,
// as a zip.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	format := r.URL.Query().Get("format")
	if format != "jsonl" {
		format = "csv"
	}
	f := s.auditFilter(r, v)
	f.Limit, f.Offset, f.Desc, f.BeforeID = 0, 0, false, 0
	dir, err := os.MkdirTemp("", "gatehouse-export-")
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not export.", err)
		return
	}
	defer os.RemoveAll(dir)
	if _, err := s.opts.AuditLog.Export(r.Context(), audit.ExportOptions{Format: format, Filter: f, Dir: dir,
		Actor: v.ws.id.User}); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not export.", err)
		return
	}
	name := "gatehouse-audit-" + s.opts.Now().UTC().Format("20060102T150405Z")
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", "attachment; filename=\""+name+".zip\"")
	zw := zip.NewWriter(w)
	defer zw.Close()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fw, err := zw.Create(name + "/" + e.Name())
		if err != nil {
			return
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return
		}
		io.Copy(fw, f)
		f.Close()
	}
}

type targetRow struct {
	config.Target
	KeyStatus string
}

func (s *Server) targetsPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	var rows []targetRow
	for _, t := range s.config().Targets {
		st := "container engine"
		switch {
		case t.Kind == "docker":
		case t.HostKey != "":
			if k, err := config.ParseAuthorizedKey(t.HostKey); err == nil {
				st = "pinned " + ssh.FingerprintSHA256(k)
			}
		case t.HostCA != "":
			if k, err := config.ParseAuthorizedKey(t.HostCA); err == nil {
				st = "host CA " + ssh.FingerprintSHA256(k)
			}
		}
		rows = append(rows, targetRow{t, st})
	}
	d := s.uiBase(v, "Targets")
	d["Targets"] = rows
	s.render(w, "targets.html", d)
}

// accessCell is what one binding may do on one target.
type accessCell struct {
	Grants []policy.Grant
}

// accessRow is one binding (a user or a group) across every target.
type accessRow struct {
	Who   string
	Roles []string
	Cells []accessCell
}

// roleRow is a role in words: what it allows, denies and grants.
type roleRow struct {
	Name                   string
	Allow, Deny, Options   []string
	AllowLogins, DenyLogin []string
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	var targets []policy.Target
	for _, t := range s.config().Targets {
		pt := policy.Target{Name: t.Name, Kind: t.Kind, Labels: t.Labels}
		if t.Kind == "docker" && t.Container == "" {
			pt.Name = "docker:*"
		}
		targets = append(targets, pt)
	}
	var rows []accessRow
	for _, b := range s.config().Bindings {
		who, user, groups := "user "+b.User, b.User, []string(nil)
		if b.Group != "" {
			who, groups, user = "group "+b.Group, []string{b.Group}, "\x00"
		}
		row := accessRow{Who: who, Roles: b.Roles}
		for _, pt := range targets {
			row.Cells = append(row.Cells, accessCell{Grants: s.opts.Policy.Grants(user, groups, pt)})
		}
		rows = append(rows, row)
	}
	var roles []roleRow
	for _, ro := range s.config().Roles {
		roles = append(roles, describeRole(ro))
	}
	d := s.uiBase(v, "Access")
	d["Targets"], d["Access"], d["Roles"] = targets, rows, roles
	s.render(w, "policy.html", d)
}

// describeRole puts a role's rules into short phrases.
func describeRole(ro config.Role) roleRow {
	rr := roleRow{Name: ro.Name, Allow: describeRules(ro.Allow), Deny: describeRules(ro.Deny),
		AllowLogins: ro.Allow.Logins, DenyLogin: ro.Deny.Logins}
	o := ro.Options
	for _, f := range []struct {
		on   bool
		text string
	}{{o.SFTP, "file transfer (sftp, scp, rsync)"}, {o.PortForwarding, "port forwarding (ssh -L)"},
		{o.AgentForwarding, "agent forwarding (ssh -A)"}} {
		if f.on {
			rr.Options = append(rr.Options, f.text)
		}
	}
	if o.MaxSessionTTL > 0 {
		rr.Options = append(rr.Options, "sessions up to "+o.MaxSessionTTL.String())
	}
	if o.IdleTimeout > 0 {
		rr.Options = append(rr.Options, "idle timeout "+o.IdleTimeout.String())
	}
	if o.CertTTL > 0 {
		rr.Options = append(rr.Options, "certificates up to "+o.CertTTL.String())
	}
	for _, p := range o.Permissions {
		rr.Options = append(rr.Options, "web: "+p)
	}
	return rr
}

// describeRules lists a rule's target selectors and command limits.
func describeRules(r config.Rules) []string {
	var out []string
	for _, n := range r.Targets.Names {
		out = append(out, "target "+n)
	}
	if len(r.Targets.Labels) > 0 {
		out = append(out, "targets labelled "+labelText(r.Targets.Labels))
	}
	if len(r.ContainerLabels) > 0 {
		out = append(out, "containers labelled "+labelText(r.ContainerLabels))
	}
	for _, c := range r.Commands {
		out = append(out, "only command "+c)
	}
	return out
}

func labelText(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

type userRow struct {
	Name, Identity string
	Enrolled       bool
	LockedUntil    string
	Roles          string
	Lock           string // admin lock reason, if locked
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	known, err := s.opts.TOTP.Users(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not list users.", err)
		return
	}
	var users []userRow
	for _, k := range known {
		u := userRow{Name: k.Name, Identity: k.Issuer + " · " + k.Subject, Enrolled: k.Enrolled}
		if k.TOTPLockedUntil.After(s.opts.Now()) {
			u.LockedUntil = k.TOTPLockedUntil.Format(time.RFC3339)
		}
		u.Roles = strings.Join(s.opts.Policy.Roles(u.Name, nil), ", ")
		if s.opts.Locks != nil {
			if lk, ok := s.opts.Locks.Locked(r.Context(), u.Name); ok {
				u.Lock = lk.Reason + " (by " + lk.By + ")"
			}
		}
		users = append(users, u)
	}
	d := s.uiBase(v, "Users")
	d["Users"] = users
	s.render(w, "users.html", d)
}

func (s *Server) resetTOTP(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	name := r.PathValue("name")
	if !auth.ValidUserName(name) {
		notFound(w)
		return
	}
	if err := s.opts.TOTP.Reset(r.Context(), name); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not reset TOTP.", err)
		return
	}
	s.audit(r, audit.Event{Type: audit.EventMFAEnrol, User: v.ws.id.User, Reason: "TOTP reset by an admin",
		Details: map[string]any{"reset_user": name}})
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}

// lockUser locks a user out (new connections refused) and ends their live
// sessions at once.
func (s *Server) lockUser(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	if s.opts.Locks == nil {
		notFound(w)
		return
	}
	name := r.PathValue("name")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if !auth.ValidUserName(name) || reason == "" || len(reason) > 200 {
		s.fail(w, r, http.StatusBadRequest, "Give a reason (up to 200 characters).", errors.New("bad lock request"))
		return
	}
	d, _ := time.ParseDuration(r.PostFormValue("for"))
	if err := s.opts.Locks.Lock(r.Context(), name, reason, v.ws.id.User, d); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not lock the user.", err)
		return
	}
	ended := 0
	if s.opts.Terminator != nil {
		ended = s.opts.Terminator.TerminateUser(name, "your access was locked: "+reason)
	}
	s.audit(r, audit.Event{Type: audit.EventLock, User: v.ws.id.User, Reason: "locked " + name + ": " + reason,
		Details: map[string]any{"locked_user": name, "for": d.String(), "sessions_ended": ended}})
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}

func (s *Server) unlockUser(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	if s.opts.Locks == nil {
		notFound(w)
		return
	}
	name := r.PathValue("name")
	if err := s.opts.Locks.Unlock(r.Context(), name); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not unlock the user.", err)
		return
	}
	s.audit(r, audit.Event{Type: audit.EventLock, User: v.ws.id.User, Reason: "unlocked " + name,
		Details: map[string]any{"unlocked_user": name}})
	http.Redirect(w, r, "/admin/users", http.StatusSeeOther)
}
