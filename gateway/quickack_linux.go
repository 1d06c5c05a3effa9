package gateway

import (
	"net"
	"syscall"
)

// pushAck sends the ACK for what was just read from nc now instead of after
// the kernel's delayed-ACK timer (40 ms on Linux), and leaves the socket in
// quick-ACK mode for what arrives next. See bufConn.quickAcks.
func pushAck(nc net.Conn) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
