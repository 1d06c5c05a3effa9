package bench

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"golang.org/x/crypto/ssh"
)

// BenchmarkCipher moves exec output through x/crypto/ssh (both ends in
// this process, over loopback) with each cipher the gateway can offer, and
// reports CPU per MB for the encrypt+decrypt pair: what the gateway's
// algorithm offer costs per leg on this CPU, less sensitive to other load
// than throughput. Run with:
//
//	go test ./bench/ -run '^$' -bench Cipher -benchtime 200x
func BenchmarkCipher(b *testing.B) {
	for _, c := range []struct{ name, cipher, mac string }{
		{"chacha20-poly1305", ssh.CipherChaCha20Poly1305, ""},
		{"aes128-gcm", ssh.CipherAES128GCM, ""},
		{"aes256-gcm", ssh.CipherAES256GCM, ""},
		{"aes128-ctr+hmac-sha2-256-etm", ssh.CipherAES128CTR, ssh.HMACSHA256ETM},
	} {
		b.Run(c.name, func(b *testing.B) { benchCipher(b, c.cipher, c.mac) })
	}
}

const cipherChunk = 1 << 20 // bytes per benchmark iteration

func benchCipher(b *testing.B, cipher, mac string) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewSignerFromKey(priv)
	algs := ssh.Config{Ciphers: []string{cipher}}
	if mac != "" {
		algs.MACs = []string{mac}
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true, Config: algs}
	scfg.AddHostKey(hk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	total := int64(b.N) * cipherChunk
	go serveBytes(ln, scfg, total)
	client, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: "x", Config: algs,
		HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	out, _ := s.StdoutPipe()
	if err := s.Start("bytes"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(cipherChunk)
	b.ResetTimer()
	cpu0 := ProcessCPU()
	n, err := io.Copy(io.Discard, out)
	cpu := ProcessCPU() - cpu0
	b.StopTimer()
	if err != nil || n != total {
		b.Fatalf("received %d of %d bytes: %v", n, total, err)
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(total>>20), "cpu-ms/MB")
}

// serveBytes answers one exec with total zero bytes of output.
func serveBytes(ln net.Listener, cfg *ssh.ServerConfig, total int64) {
	nc, err := ln.Accept()
	if err != nil {
		return
	}
	_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			for req := range creqs {
				req.Reply(req.Type == "exec", nil)
				if req.Type == "exec" {
					buf := make([]byte, 32<<10)
					for left := total; left > 0; left -= int64(len(buf)) {
						if _, err := ch.Write(buf[:min(int64(len(buf)), left)]); err != nil {
							return
						}
					}
					var st [4]byte
					binary.BigEndian.PutUint32(st[:], 0)
					ch.SendRequest("exit-status", false, st[:])
					ch.Close()
				}
			}
		}()
	}
}
