package gateway

import "golang.org/x/crypto/ssh"

// serveTargetIncoming answers what the target sends on its own over a
// connection the gateway dialled without agent forwarding — global requests
// (refused, as ssh.Client does) and channel opens (refused) — in one
// goroutine. ssh.NewClient would start three per connection (global
// requests, channel opens, a waiter for remote forwards the gateway never
// requests): two goroutine stacks per session saved at thousands of idle
// sessions. (With agent forwarding the gateway still uses ssh.Client.)
func serveTargetIncoming(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	for chans != nil || reqs != nil {
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}
