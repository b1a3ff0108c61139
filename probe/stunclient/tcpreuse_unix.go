//go:build unix

package stunclient

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// ReuseControl lets several TCP sockets bind the same local port, so that
// connections to different servers leave from one internal endpoint, as
// the TCP mapping test needs. SO_REUSEPORT is what BSDs require; Linux is
// content with SO_REUSEADDR for sockets that never listen.
func ReuseControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); e != nil && !errors.Is(e, unix.ENOPROTOOPT) {
			serr = e
		}
	})
	if err != nil {
		return err
	}
	return serr
}
