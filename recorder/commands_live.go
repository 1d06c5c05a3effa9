package recorder

import (
	"sync"

	"github.com/gatehouse/gatehouse/recorder/cmdline"
)

// liveCmds delivers the commands a terminal session's Tracker finds while
// the session runs: stored in recording_commands and passed to OnCommand in
// the order typed, by a goroutine that exists only while there are commands
// to deliver (an idle session has none).
type liveCmds struct {
	cmdMu   sync.Mutex
	queue   []Command
	busy    bool
	found   []Command
	drained sync.WaitGroup
}

// maxFoundCommands bounds the commands a Summary lists (all are stored).
const maxFoundCommands = 10000

// onLine receives a command from the Tracker (under rec.mu): it must not
// block the session, so delivery happens on its own goroutine.
func (rec *Recording) onLine(c cmdline.Command) {
	cmd := Command{Time: rec.start.Add(c.Offset), Offset: c.Offset, Source: "screen", Text: c.Text}
	rec.cmdMu.Lock()
	defer rec.cmdMu.Unlock()
	rec.queue = append(rec.queue, cmd)
	if !rec.busy {
		rec.busy = true
		rec.drained.Add(1)
		go rec.deliver()
	}
}

// deliver stores and announces queued commands until none are left.
func (rec *Recording) deliver() {
	defer rec.drained.Done()
	for {
		rec.cmdMu.Lock()
		batch := rec.queue
		rec.queue = nil
		if len(batch) == 0 {
			rec.busy = false
			rec.cmdMu.Unlock()
			return
		}
		if n := maxFoundCommands - len(rec.found); n > 0 {
			rec.found = append(rec.found, batch[:min(n, len(batch))]...)
		}
		rec.cmdMu.Unlock()
		rec.r.saveCommands(rec.id, batch)
		if fn := rec.info.OnCommand; fn != nil {
			for _, c := range batch {
				fn(c)
			}
		}
	}
}

// waitCommands waits until every command found is delivered (Close has
// stopped the Tracker) and returns them.
func (rec *Recording) waitCommands() []Command {
	rec.drained.Wait()
	rec.cmdMu.Lock()
	defer rec.cmdMu.Unlock()
	return append([]Command(nil), rec.found...)
}

// Line is what the session's Tracker knows of the line being typed (the
// zero State for sessions without a terminal or once sealed).
func (rec *Recording) Line() cmdline.State {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.lines == nil {
		return cmdline.State{}
	}
	return rec.lines.State()
}
