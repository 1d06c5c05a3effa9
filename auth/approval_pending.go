package auth

// Pending is the number of browser approvals this instance's connections
// are waiting for now (metrics).
func (a *Approvals) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	now, n := a.now(), 0
	for _, p := range a.waiters {
		if now.Before(p.Expires) {
			n++
		}
	}
	return n
}
