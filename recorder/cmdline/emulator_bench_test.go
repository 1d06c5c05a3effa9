package cmdline

import (
	"testing"

	"github.com/charmbracelet/x/vt"
)

// BenchmarkNewEmulator is what a line typed while the emulator pool is
// empty costs: a new vt.Emulator (its parser allocates a fixed 4 MiB
// buffer) and its collection.
func BenchmarkNewEmulator(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		vt.NewEmulator(80, 24).Close()
	}
}

// BenchmarkPooledEmulator is the same with the pool: what a line costs
// when an idle emulator is there to reuse.
func BenchmarkPooledEmulator(b *testing.B) {
	b.ReportAllocs()
	putEmulator(getEmulator(80, 24))
	for i := 0; i < b.N; i++ {
		putEmulator(getEmulator(80, 24))
	}
}
