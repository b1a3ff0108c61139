//go:build !linux

package server

import "syscall"

// reusePort is a no-op where SO_REUSEPORT does not spread load; use one
// worker there (see Config.Workers).
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
