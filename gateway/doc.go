// Package gateway is Gatehouse's SSH front door. It accepts standard OpenSSH
// clients, authenticates them by Gatehouse user certificates (or a browser
// approval for plain keys), decides access with the policy engine, reaches the
// target with a certificate minted for that one session, and relays every
// channel through the recorder.
//
// Three ways in, all recorded:
//
//   - direct: "ssh -p 2222 root@db-1@gw" — the SSH user name carries
//     login@target (see ParseAddress);
//   - ProxyJump: "ssh -J gw root@db-1" — the client asks the gateway for a
//     direct-tcpip channel to db-1:22; the gateway terminates that inner SSH
//     connection itself (presenting a host certificate for "db-1" signed by
//     the host CA), authenticates the user again, and relays it like a direct
//     connection — never a blind TCP tunnel;
//   - menu: "ssh gw" with no target prints the targets the user may reach.
//
// Lifecycle: NewServer, then Serve on one or more listeners; Shutdown(ctx)
// stops accepting, tells live sessions, waits for them until ctx is done and
// then closes them; Close closes everything at once. Serve returns
// ErrServerClosed after either.
//
// Every session channel must be serviced: the relay always drains the
// target's requests and data so neither side's window stalls.
package gateway
