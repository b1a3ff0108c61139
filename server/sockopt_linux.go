package server

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets each worker bind its own socket to the same address and
// port; the kernel spreads clients over them by a hash of their address.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
