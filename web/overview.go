package web

import (
	"net/http"
	"time"
)

// overviewDays is how far back the overview page looks.
const overviewDays = 14

// overviewPage shows admins and auditors, at a glance: sessions per day by
// kind, refusals by reason, top users and targets, recording bytes per day
// and the sessions live now.
func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	now := s.opts.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	first := today.AddDate(0, 0, -(overviewDays - 1))
	st, err := s.opts.Sessions.Stats(r.Context(), first, 8)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read session statistics.", err)
		return
	}
	bytes, err := s.opts.Recordings.BytesPerDay(r.Context(), first)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read recording statistics.", err)
		return
	}
	refusals, err := s.opts.AuditLog.Refusals(r.Context(), first, 8)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the audit log.", err)
		return
	}
	var total, totalBytes, totalRefused int64
	for _, c := range st.PerDay {
		total += c.N
	}
	for _, c := range bytes {
		totalBytes += c.N
	}
	for _, c := range refusals {
		totalRefused += c.N
	}
	d := s.uiBase(v, "Overview")
	d["Days"], d["Live"], d["Total"], d["TotalBytes"], d["Refused"] = overviewDays, st.Live, total, humanBytes(totalBytes), totalRefused
	d["SessionsChart"] = dayBars("Sessions started per day, by kind", first, today, st.PerDay,
		func(n int64) string { return itoa(n) })
	d["BytesChart"] = dayBars("Recording bytes per day", first, today, bytes, humanBytes)
	d["RefusalsChart"] = hBars("Refusals by reason", refusals, "#D55E00")
	d["UsersChart"] = hBars("Sessions by user", st.TopUsers, "#0072B2")
	d["TargetsChart"] = hBars("Sessions by login and target", st.TopTargets, "#009E73")
	s.render(w, "overview.html", d)
}
