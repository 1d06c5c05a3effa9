package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// goTarget is a cheap SSH target in this process (x/crypto/ssh): it trusts
// the gateway's session CA, answers exec at once with exit status 0 and
// answers a shell with a prompt, then idles until the channel closes. It
// measures the gateway alone, without a forking sshd behind it.
type goTarget struct {
	ln      net.Listener
	hostPub string // authorized_keys line of its host key
	cfg     *ssh.ServerConfig
}

func startGoTarget(sessionCALine string) (*goTarget, error) {
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
	t := &goTarget{ln: ln, cfg: cfg, hostPub: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hk.PublicKey())))}
	go t.serve()
	return t, nil
}

func (t *goTarget) addr() string { return t.ln.Addr().String() }
func (t *goTarget) close()       { t.ln.Close() }

func (t *goTarget) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go t.conn(c)
	}
}

func (t *goTarget) conn(c net.Conn) {
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

// session answers one session channel: exec exits 0 at once; a shell
// prints a prompt and reads (discarding) until the client closes.
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
			ch.Write([]byte("$ "))
			go func() {
				buf := make([]byte, 256)
				for {
					if _, err := ch.Read(buf); err != nil {
						ch.Close()
						return
					}
				}
			}()
		case "pty-req", "env", "window-change":
			req.Reply(req.WantReply, nil)
		default:
			req.Reply(false, nil)
		}
	}
}
