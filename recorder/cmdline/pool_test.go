package cmdline

import (
	"slices"
	"testing"

	"github.com/charmbracelet/x/vt"
)

// resetPool empties the emulator pool and its period, for a test that
// counts what it keeps.
func resetPool(t *testing.T) {
	t.Helper()
	emulators.Lock()
	if emulators.trim != nil {
		emulators.trim.Stop()
		emulators.trim = nil
	}
	free := emulators.free
	emulators.free = nil
	emulators.peak = emulators.inUse
	emulators.Unlock()
	for _, em := range free {
		closeEmulator(em)
	}
}

func idleEmulators() (n int, trimArmed bool) {
	emulators.Lock()
	defer emulators.Unlock()
	return len(emulators.free), emulators.trim != nil
}

func takeEmulators(n int) []*vt.Emulator {
	ems := make([]*vt.Emulator, n)
	for i := range ems {
		ems[i] = getEmulator(80, 24)
	}
	return ems
}

func giveEmulators(ems []*vt.Emulator) {
	for _, em := range ems {
		putEmulator(em)
	}
}

// TestEmulatorPoolFollowsDemand checks that the pool keeps as many idle
// emulators as lines were typed at once lately — so the next burst makes
// none (an emulator is ~4.8 MiB and ~6 ms to make) — never more than
// poolMax, and lets the extra ones go two trims after the burst.
func TestEmulatorPoolFollowsDemand(t *testing.T) {
	resetPool(t)
	t.Cleanup(func() { resetPool(t) })

	burst := takeEmulators(10)
	giveEmulators(burst)
	if n, armed := idleEmulators(); n != 10 || !armed {
		t.Fatalf("after 10 lines typed at once: %d idle emulators (trim armed %v), want 10 and a trim", n, armed)
	}
	again := takeEmulators(10)
	for i, em := range again {
		if !slices.Contains(burst, em) {
			t.Fatalf("line %d of the second burst got a new emulator, want one of the 10 pooled", i)
		}
	}
	giveEmulators(again)

	trimEmulators() // the period of the bursts: still needed
	if n, _ := idleEmulators(); n != 10 {
		t.Fatalf("after the trim that ends the busy period: %d idle, want 10", n)
	}
	trimEmulators() // a quiet period
	if n, armed := idleEmulators(); n != poolMin || armed {
		t.Fatalf("after a quiet period: %d idle (trim armed %v), want %d and no trim", n, armed, poolMin)
	}

	big := takeEmulators(poolMax + 8)
	giveEmulators(big)
	if n, _ := idleEmulators(); n != poolMax {
		t.Fatalf("after %d lines at once: %d idle, want at most %d", poolMax+8, n, poolMax)
	}
	trimEmulators()
	trimEmulators()
	if n, _ := idleEmulators(); n != poolMin {
		t.Fatalf("two trims after the big burst: %d idle, want %d", n, poolMin)
	}
}

// TestEmulatorPoolKeepsLinesInUse checks that a trim while lines are being
// typed does not count their emulators as idle: what comes back after it
// is kept as long as the period's peak needs it.
func TestEmulatorPoolKeepsLinesInUse(t *testing.T) {
	resetPool(t)
	t.Cleanup(func() { resetPool(t) })

	typing := takeEmulators(8)
	trimEmulators() // peak 8, 8 in use, none idle
	giveEmulators(typing)
	if n, _ := idleEmulators(); n != 8 {
		t.Fatalf("8 lines ended after a trim in their period: %d idle, want 8", n)
	}
}
