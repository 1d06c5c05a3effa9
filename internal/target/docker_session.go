package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
)

// dockerSession presents one `docker exec` as an SSH session channel: the
// gateway sends it the usual requests (pty-req, env, window-change, shell,
// exec) and reads stdout, stderr and an exit-status request back.
type dockerSession struct {
	d    *dockerConn
	reqs chan *ssh.Request

	outR, errR *io.PipeReader
	outW, errW *io.PipeWriter

	// mu protects the following.
	mu      sync.Mutex
	pty     *dockerPTY
	env     []string
	execID  string
	hj      *client.HijackedResponse
	sftpIn  *io.PipeWriter // the client's bytes to the gateway's sftp server
	closed  bool
	reqOnce sync.Once
}

type dockerPTY struct {
	Term       string
	Cols, Rows uint32
	W, H       uint32
	Modes      string
}

func newDockerSession(d *dockerConn) *dockerSession {
	s := &dockerSession{d: d, reqs: make(chan *ssh.Request, 4)}
	s.outR, s.outW = io.Pipe()
	s.errR, s.errW = io.Pipe()
	return s
}

// Read reads the process's stdout (or the terminal).
func (s *dockerSession) Read(p []byte) (int, error) { return s.outR.Read(p) }

// Write writes to the process's stdin.
func (s *dockerSession) Write(p []byte) (int, error) {
	s.mu.Lock()
	hj, in := s.hj, s.sftpIn
	s.mu.Unlock()
	if in != nil {
		return in.Write(p)
	}
	if hj == nil {
		return 0, errors.New("target: container session not started")
	}
	return hj.Conn.Write(p)
}

// CloseWrite closes the process's stdin.
func (s *dockerSession) CloseWrite() error {
	s.mu.Lock()
	hj, in := s.hj, s.sftpIn
	s.mu.Unlock()
	if in != nil {
		return in.Close()
	}
	if hj == nil {
		return nil
	}
	return hj.CloseWrite()
}

// Close ends the session: the attach connection is closed (a TTY process
// gets SIGHUP; see docs/containers.md for non-TTY processes).
func (s *dockerSession) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	hj, in := s.hj, s.sftpIn
	s.mu.Unlock()
	if in != nil {
		in.Close() // the sftp server ends and closes the pipes and requests
	} else if hj != nil {
		hj.Close() // the pump sees the end and closes the pipes and requests
	} else {
		s.outW.Close()
		s.errW.Close()
		s.closeReqs()
	}
	s.d.forget(s)
	return nil
}

func (s *dockerSession) closeReqs() { s.reqOnce.Do(func() { close(s.reqs) }) }

// Stderr returns the process's stderr (read-only).
func (s *dockerSession) Stderr() io.ReadWriter { return stderrReader{s.errR} }

type stderrReader struct{ *io.PipeReader }

func (stderrReader) Write([]byte) (int, error) { return 0, errors.New("target: stderr is read-only") }

// SendRequest handles the session requests the gateway forwards.
func (s *dockerSession) SendRequest(name string, _ bool, payload []byte) (bool, error) {
	switch name {
	case "pty-req":
		var p dockerPTY
		if err := ssh.Unmarshal(payload, &p); err != nil {
			return false, nil
		}
		s.mu.Lock()
		s.pty = &p
		s.mu.Unlock()
		return true, nil
	case "env":
		var e struct{ Name, Value string }
		if err := ssh.Unmarshal(payload, &e); err != nil {
			return false, nil
		}
		s.mu.Lock()
		s.env = append(s.env, e.Name+"="+e.Value)
		s.mu.Unlock()
		return true, nil
	case "window-change":
		var w struct{ Cols, Rows, W, H uint32 }
		if err := ssh.Unmarshal(payload, &w); err != nil {
			return false, nil
		}
		return s.resize(w.Cols, w.Rows), nil
	case "shell":
		return s.start(""), nil
	case "exec":
		var c struct{ Value string }
		if err := ssh.Unmarshal(payload, &c); err != nil {
			return false, nil
		}
		return s.start(c.Value), nil
	case "subsystem":
		var c struct{ Value string }
		if err := ssh.Unmarshal(payload, &c); err != nil || c.Value != "sftp" {
			return false, nil
		}
		return s.startSFTP(), nil
	}
	// signal (the Engine API cannot signal exec processes), agent
	// forwarding: not available.
	return false, nil
}

func (s *dockerSession) resize(cols, rows uint32) bool {
	s.mu.Lock()
	if s.pty != nil {
		s.pty.Cols, s.pty.Rows = cols, rows
	}
	id, hasPTY := s.execID, s.pty != nil
	s.mu.Unlock()
	if id == "" {
		return hasPTY
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.d.cli.ExecResize(ctx, id, client.ExecResizeOptions{Height: uint(rows), Width: uint(cols)})
	return err == nil
}

// shellCommand picks the configured shell, else bash when the image has it.
func (s *dockerSession) argv(command string) []string {
	switch {
	case command != "":
		return []string{"/bin/sh", "-c", command}
	case s.d.opts.Shell != "":
		return []string{s.d.opts.Shell}
	}
	return []string{"/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l"}
}

// start creates and attaches the exec process.
func (s *dockerSession) start(command string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.execID != "" || s.sftpIn != nil || s.closed {
		return false
	}
	user := s.d.login
	if user == "root" {
		user = "0" // by uid: minimal images have no /etc/passwd
	}
	opts := client.ExecCreateOptions{User: user, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		Env: append([]string(nil), s.env...), Cmd: s.argv(command)}
	var size client.ConsoleSize
	if s.pty != nil {
		opts.TTY = true
		size = client.ConsoleSize{Height: uint(s.pty.Rows), Width: uint(s.pty.Cols)}
		opts.ConsoleSize = size
		if s.pty.Term != "" {
			opts.Env = append(opts.Env, "TERM="+s.pty.Term)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	created, err := s.d.cli.ExecCreate(ctx, s.d.id, opts)
	if err != nil {
		s.d.opts.Logger.Warn("docker exec create failed", "container", s.d.name, "login", s.d.login, "err", err)
		return false
	}
	att, err := s.d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: opts.TTY, ConsoleSize: size})
	if err != nil {
		s.d.opts.Logger.Warn("docker exec attach failed", "container", s.d.name, "err", err)
		return false
	}
	s.execID, s.hj = created.ID, &att.HijackedResponse
	if opts.TTY {
		// Engines before API 1.42 ignore ConsoleSize at create: set it now.
		s.d.cli.ExecResize(ctx, created.ID, client.ExecResizeOptions(size))
	}
	go s.pump(opts.TTY)
	return true
}

// pump copies the exec's output until it ends, then reports how it ended:
// a message if the container stopped, and the exit status.
func (s *dockerSession) pump(tty bool) {
	if tty {
		io.Copy(s.outW, s.hj.Reader)
	} else {
		stdcopy.StdCopy(s.outW, s.errW, s.hj.Reader)
	}
	code := s.exitCode()
	if err := s.containerGone(code); err != nil && !s.isClosed() {
		msg := fmt.Sprintf("\r\ngatehouse: container %s stopped during the session\r\n", s.d.name)
		if errors.Is(err, ErrUnreachable) {
			msg = fmt.Sprintf("\r\ngatehouse: lost the Docker Engine during the session (%v)\r\n", err)
		}
		s.errW.Write([]byte(msg))
		if code == 0 {
			code = 255
		}
	}
	s.outW.Close()
	s.errW.Close()
	if code >= 0 {
		s.reqs <- &ssh.Request{Type: "exit-status", Payload: ssh.Marshal(struct{ Status uint32 }{uint32(code)})}
	}
	s.closeReqs()
	s.hj.Close()
}

// containerGone reports why the container is no longer running, if it is
// not. A process killed by SIGKILL or SIGTERM (status 137, 143) or with no
// status may belong to a container on its way down, so its state is checked
// for a moment.
func (s *dockerSession) containerGone(code int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for try := 0; ; try++ {
		_, err := inspect(ctx, s.d.cli, s.d.opts, s.d.id)
		if err != nil || (code != 137 && code != 143 && code != -1) || try >= 20 {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *dockerSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// exitCode waits briefly for the engine to record the exit, -1 if unknown.
func (s *dockerSession) exitCode() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		res, err := s.d.cli.ExecInspect(ctx, s.execID, client.ExecInspectOptions{})
		if err != nil {
			return -1
		}
		if !res.Running {
			return res.ExitCode
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(20 * time.Millisecond):
		}
	}
}
