//go:build !unix

package stunclient

import (
	"errors"
	"syscall"
)

// ReuseControl is not implemented here: the TCP mapping test then reports
// its mapping as unknown.
func ReuseControl(_, _ string, _ syscall.RawConn) error {
	return errors.New("sharing a local TCP port is not supported on this platform")
}
