//go:build !unix

package probe

import (
	"errors"
	"syscall"
)

// reuseControl is not implemented here: the TCP mapping test then reports
// its mapping as unknown.
func reuseControl(_, _ string, _ syscall.RawConn) error {
	return errors.New("sharing a local TCP port is not supported on this platform")
}
