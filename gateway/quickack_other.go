//go:build !linux

package gateway

import "net"

// pushAck does nothing where TCP_QUICKACK does not exist.
func pushAck(net.Conn) {}
