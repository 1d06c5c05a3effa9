package sftptap

import (
	"encoding/binary"
	"fmt"
)

// FileOp is one file operation seen in an sftp session (scp, sftp and rsync
// over sftp all use it).
type FileOp struct {
	Op           string // open | read | write | remove | rename | mkdir | rmdir | setstat
	Path         string
	NewPath      string // rename target
	BytesRead    int64  // bytes the client downloaded from this file
	BytesWritten int64  // bytes the client uploaded to this file
	Err          string // the server's error, if the operation failed
}

// SFTP packet types (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it).
const (
	sftpInit     = 1
	sftpOpen     = 3
	sftpClose    = 4
	sftpRead     = 5
	sftpWrite    = 6
	sftpSetstat  = 9
	sftpRemove   = 13
	sftpMkdir    = 14
	sftpRmdir    = 15
	sftpRename   = 18
	sftpExtended = 200
	sftpStatus   = 101
	sftpHandle   = 102
	sftpData     = 103
)

// maxSFTPPacket bounds a packet the tap will buffer; a stream with a larger
// one stops being itemised (the session itself is unaffected).
const maxSFTPPacket = 1 << 20

// Tap watches both directions of an sftp subsystem channel and reports
// file operations. It never blocks or alters the stream; on a malformed
// stream it stops itemising and reports that once.
type Tap struct {
	onOp    func(FileOp)
	in, out []byte // partial packets client→server, server→client
	pending map[uint32]sftpReq
	handles map[string]*sftpFile
	broken  bool
}

type sftpReq struct {
	typ           byte
	path, newPath string
	handle        string
}

type sftpFile struct {
	path          string
	read, written int64
}

// New returns a tap reporting to onOp.
func New(onOp func(FileOp)) *Tap {
	return &Tap{onOp: onOp, pending: map[uint32]sftpReq{}, handles: map[string]*sftpFile{}}
}

// ClientToServer feeds bytes the client sent.
func (t *Tap) ClientToServer(p []byte) { t.in = t.feed(t.in, p, t.request) }

// ServerToClient feeds bytes the server sent.
func (t *Tap) ServerToClient(p []byte) { t.out = t.feed(t.out, p, t.reply) }

// Close reports files still open when the session ended.
func (t *Tap) Close() {
	for h, f := range t.handles {
		t.emitFile(f)
		delete(t.handles, h)
	}
}

func (t *Tap) feed(buf, p []byte, handle func(typ byte, body []byte) error) []byte {
	if t.broken {
		return nil
	}
	buf = append(buf, p...)
	for len(buf) >= 5 {
		n := binary.BigEndian.Uint32(buf)
		if n == 0 || n > maxSFTPPacket {
			t.stop(fmt.Sprintf("packet length %d", n))
			return nil
		}
		if uint32(len(buf)-4) < n {
			break
		}
		if err := handle(buf[4], buf[5:4+n]); err != nil {
			t.stop(err.Error())
			return nil
		}
		buf = buf[4+n:]
	}
	if len(buf) == 0 {
		return buf[:0]
	}
	return append([]byte(nil), buf...)
}

func (t *Tap) stop(why string) {
	t.broken = true
	t.onOp(FileOp{Op: "unparsed", Err: "sftp stream could not be itemised: " + why})
}

// sftpReader reads SSH wire types from a packet body.
type sftpReader struct {
	b   []byte
	err error
}

func (r *sftpReader) u32() uint32 {
	if len(r.b) < 4 {
		r.err = fmt.Errorf("short packet")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *sftpReader) u64() uint64 {
	hi, lo := r.u32(), r.u32()
	return uint64(hi)<<32 | uint64(lo)
}

func (r *sftpReader) str() string {
	n := r.u32()
	if r.err != nil || uint32(len(r.b)) < n {
		r.err = fmt.Errorf("short string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (t *Tap) request(typ byte, body []byte) error {
	if typ == sftpInit {
		return nil
	}
	r := &sftpReader{b: body}
	id := r.u32()
	var q sftpReq
	switch typ {
	case sftpOpen, sftpRemove, sftpMkdir, sftpRmdir, sftpSetstat:
		q = sftpReq{typ: typ, path: r.str()}
	case sftpRename:
		q = sftpReq{typ: typ, path: r.str()}
		q.newPath = r.str()
	case sftpExtended:
		// OpenSSH's sftp renames with posix-rename@openssh.com.
		if r.str() != "posix-rename@openssh.com" {
			return r.err
		}
		q = sftpReq{typ: sftpRename, path: r.str()}
		q.newPath = r.str()
	case sftpClose:
		q = sftpReq{typ: typ, handle: r.str()}
	case sftpRead:
		q = sftpReq{typ: typ, handle: r.str()}
	case sftpWrite:
		h := r.str()
		r.u64()
		data := r.str()
		if f := t.handles[h]; f != nil && r.err == nil {
			f.written += int64(len(data))
		}
		return r.err
	default:
		return r.err
	}
	if r.err != nil {
		return r.err
	}
	if len(t.pending) < 10000 {
		t.pending[id] = q
	}
	return nil
}

func (t *Tap) reply(typ byte, body []byte) error {
	r := &sftpReader{b: body}
	if typ == 2 { // VERSION
		return nil
	}
	id := r.u32()
	q, ok := t.pending[id]
	if !ok {
		return r.err
	}
	delete(t.pending, id)
	switch typ {
	case sftpHandle:
		if h := r.str(); q.typ == sftpOpen && r.err == nil && len(t.handles) < 10000 {
			t.handles[h] = &sftpFile{path: q.path}
		}
	case sftpData:
		data := r.str()
		if f := t.handles[q.handle]; f != nil && q.typ == sftpRead && r.err == nil {
			f.read += int64(len(data))
		}
	case sftpStatus:
		code := r.u32()
		msg := r.str()
		t.status(q, code, msg)
	}
	return r.err
}

var sftpOpNames = map[byte]string{sftpOpen: "open", sftpRemove: "remove", sftpMkdir: "mkdir", sftpRmdir: "rmdir",
	sftpRename: "rename", sftpSetstat: "setstat"}

func (t *Tap) status(q sftpReq, code uint32, msg string) {
	if q.typ == sftpClose {
		if f := t.handles[q.handle]; f != nil {
			t.emitFile(f)
			delete(t.handles, q.handle)
		}
		return
	}
	name, ok := sftpOpNames[q.typ]
	if !ok {
		return
	}
	op := FileOp{Op: name, Path: q.path, NewPath: q.newPath}
	if code != 0 { // SSH_FX_OK
		if msg == "" {
			msg = fmt.Sprintf("status %d", code)
		}
		op.Err = msg
	} else if q.typ == sftpOpen {
		return // reported at close, with byte counts
	}
	t.onOp(op)
}

func (t *Tap) emitFile(f *sftpFile) {
	op := "open"
	switch {
	case f.written > 0:
		op = "write"
	case f.read > 0:
		op = "read"
	}
	t.onOp(FileOp{Op: op, Path: f.path, BytesRead: f.read, BytesWritten: f.written})
}
