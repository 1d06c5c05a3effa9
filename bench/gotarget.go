package bench

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// GoTarget is a cheap SSH target in this process (x/crypto/ssh): it trusts
// the gateway's session CA, answers exec at once with exit status 0 and
// answers a shell with a prompt, then echoes typing (Enter gives the next
// prompt) until the channel closes. It
// measures the gateway alone, without a forking sshd behind it.
type GoTarget struct {
	ln      net.Listener
	HostPub string // authorized_keys line of its host key
	cfg     *ssh.ServerConfig
}

// StartGoTarget starts a GoTarget on loopback that trusts the session CA
// in sessionCALine (authorized_keys form).
func StartGoTarget(sessionCALine string) (*GoTarget, error) {
	ca, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sessionCALine))
	if err != nil {
		return nil, fmt.Errorf("session CA: %w", err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	checker := &ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool {
		return bytes.Equal(k.Marshal(), ca.Marshal())
	}}
	cfg := &ssh.ServerConfig{PublicKeyCallback: checker.Authenticate}
	cfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &GoTarget{ln: ln, cfg: cfg, HostPub: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hk.PublicKey())))}
	go t.serve()
	return t, nil
}

// Addr is the target's address.
func (t *GoTarget) Addr() string { return t.ln.Addr().String() }

// Close stops accepting connections.
func (t *GoTarget) Close() { t.ln.Close() }

func (t *GoTarget) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go t.conn(c)
	}
}

func (t *GoTarget) conn(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, t.cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go session(ch, creqs)
	}
}

// prompt is the Go target shell's prompt.
const prompt = "$ "

// session answers one session channel: exec exits 0 at once; a shell
// prints a prompt and echoes what is typed until the client closes.
func session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "exec":
			req.Reply(true, nil)
			var st [4]byte
			binary.BigEndian.PutUint32(st[:], 0)
			ch.SendRequest("exit-status", false, st[:])
			ch.Close()
		case "shell":
			req.Reply(true, nil)
			ch.Write([]byte(prompt))
			go echoLines(ch)
		case "pty-req", "env", "window-change":
			req.Reply(req.WantReply, nil)
		default:
			req.Reply(false, nil)
		}
	}
}

// echoLines is the shell's line editor: keys are echoed, and Enter answers
// with a newline and the next prompt, until the client closes.
func echoLines(ch ssh.Channel) {
	buf := make([]byte, 256)
	for {
		n, err := ch.Read(buf)
		if err != nil {
			ch.Close()
			return
		}
		out := bytes.ReplaceAll(buf[:n], []byte("\r"), []byte("\r\n"+prompt))
		if _, err := ch.Write(out); err != nil {
			return
		}
	}
}

// IdleSession opens one interactive session (pty and shell) and waits for
// the prompt.
func IdleSession(addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	c, _, _, err := InteractiveSession(addr, cfg)
	return c, err
}

// InteractiveSession opens one interactive session (pty and shell) to the
// Go target's shell, waits for its prompt and returns the session's stdin
// and stdout.
func InteractiveSession(addr string, cfg *ssh.ClientConfig) (*ssh.Client, io.WriteCloser, io.Reader, error) {
	c, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	// Stdin stays open, as a person's terminal does: with no Stdin the
	// session sends EOF at once and the shell on the target ends, leaving
	// a connection without a session (the figure then missed every
	// goroutine and buffer of the session itself).
	in, err := s.StdinPipe()
	if err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	out, err := s.StdoutPipe()
	if err == nil {
		err = s.RequestPty("xterm", 24, 80, ssh.TerminalModes{})
	}
	if err == nil {
		err = s.Shell()
	}
	if err == nil {
		_, err = io.ReadFull(out, make([]byte, len(prompt)))
	}
	if err != nil {
		c.Close()
		return nil, nil, nil, err
	}
	return c, in, out, nil
}
