package sftptap

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func TestTapIgnoresGarbage(t *testing.T) {
	var ops []FileOp
	tap := New(func(op FileOp) { ops = append(ops, op) })
	tap.ClientToServer([]byte{0xff, 0xff, 0xff, 0xff, 1})
	tap.ClientToServer([]byte("more"))
	if len(ops) != 1 || ops[0].Op != "unparsed" {
		t.Fatalf("ops %+v", ops)
	}
}

// FuzzTap feeds arbitrary bytes both ways; the tap must never panic and
// must stay bounded.
func FuzzTap(f *testing.F) {
	open := []byte{0, 0, 0, 18, sftpOpen, 0, 0, 0, 1, 0, 0, 0, 5, '/', 't', 'm', 'p', 'x', 0, 0, 0, 1, 0, 0, 0, 0}
	handle := []byte{0, 0, 0, 10, sftpHandle, 0, 0, 0, 1, 0, 0, 0, 1, 'h'}
	f.Add(open, handle)
	f.Add([]byte{0, 0, 0, 0}, []byte{0xff})
	f.Fuzz(func(t *testing.T, in, out []byte) {
		n := 0
		tap := New(func(FileOp) { n++ })
		for i := 0; i < len(in) || i < len(out); i += 7 {
			tap.ClientToServer(in[min(i, len(in)):min(i+7, len(in))])
			tap.ServerToClient(out[min(i, len(out)):min(i+7, len(out))])
		}
		tap.Close()
		if len(tap.pending) > 10000 || len(tap.handles) > 10000 {
			t.Fatal("unbounded state")
		}
	})
}

// pkt builds one sftp packet: length, type, then the fields (uint32, uint64
// or length-prefixed string).
func pkt(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// An upload, a download, a posix-rename and a refused remove, fed one byte
// at a time (packets split anywhere), are itemised as a user would list
// them: what was written or read with byte counts, the rename with both
// names, the refusal with the server's message.
func TestTapItemisesTransfers(t *testing.T) {
	var ops []FileOp
	tap := New(func(op FileOp) { ops = append(ops, op) })
	c2s := [][]byte{
		pkt(sftpInit, uint32(3)),
		pkt(sftpOpen, uint32(1), "/srv/up.txt", uint32(0x1a), uint32(0)),
		pkt(sftpWrite, uint32(2), "h1", uint64(0), "hello"),
		pkt(sftpWrite, uint32(3), "h1", uint64(5), " world"),
		pkt(sftpClose, uint32(4), "h1"),
		pkt(sftpOpen, uint32(5), "/srv/down.txt", uint32(1), uint32(0)),
		pkt(sftpRead, uint32(6), "h2", uint64(0), uint32(32768)),
		pkt(sftpClose, uint32(7), "h2"),
		pkt(sftpExtended, uint32(8), "posix-rename@openssh.com", "/srv/up.txt", "/srv/done.txt"),
		pkt(sftpRemove, uint32(9), "/etc/passwd"),
	}
	s2c := [][]byte{
		pkt(2, uint32(3)),
		pkt(sftpHandle, uint32(1), "h1"),
		pkt(sftpStatus, uint32(2), uint32(0), "", ""),
		pkt(sftpStatus, uint32(3), uint32(0), "", ""),
		pkt(sftpStatus, uint32(4), uint32(0), "", ""),
		pkt(sftpHandle, uint32(5), "h2"),
		pkt(sftpData, uint32(6), "0123456789"),
		pkt(sftpStatus, uint32(7), uint32(0), "", ""),
		pkt(sftpStatus, uint32(8), uint32(0), "", ""),
		pkt(sftpStatus, uint32(9), uint32(3), "Permission denied", ""),
	}
	for i := range c2s {
		for _, b := range c2s[i] {
			tap.ClientToServer([]byte{b})
		}
		for _, b := range s2c[i] {
			tap.ServerToClient([]byte{b})
		}
	}
	tap.Close()
	want := []FileOp{
		{Op: "write", Path: "/srv/up.txt", BytesWritten: 11},
		{Op: "read", Path: "/srv/down.txt", BytesRead: 10},
		{Op: "rename", Path: "/srv/up.txt", NewPath: "/srv/done.txt"},
		{Op: "remove", Path: "/etc/passwd", Err: "Permission denied"},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Fatalf("ops\n%+v\nwant\n%+v", ops, want)
	}
}

// A file still open when the channel ends is reported by Close (a write
// sent before the server named the handle cannot be attributed to a file).
func TestTapCloseReportsOpenFiles(t *testing.T) {
	var ops []FileOp
	tap := New(func(op FileOp) { ops = append(ops, op) })
	tap.ClientToServer(append(pkt(sftpOpen, uint32(1), "/srv/partial", uint32(0x1a), uint32(0)),
		pkt(sftpWrite, uint32(2), "h", uint64(0), "abc")...))
	tap.ServerToClient(pkt(sftpHandle, uint32(1), "h"))
	tap.ClientToServer(pkt(sftpWrite, uint32(3), "h", uint64(3), "def"))
	if len(ops) != 0 {
		t.Fatalf("reported before close: %+v", ops)
	}
	tap.Close()
	if len(ops) != 1 || ops[0] != (FileOp{Op: "write", Path: "/srv/partial", BytesWritten: 3}) {
		t.Fatalf("ops %+v", ops)
	}
}
