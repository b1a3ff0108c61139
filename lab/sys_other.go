//go:build !linux

package lab

import (
	"errors"
	"os/exec"
	"runtime"
)

// The lab needs Linux network namespaces; on other systems the package
// compiles so that the tests using it build, and Require skips them (or
// fails them with NATCHECK_LAB=1) naming the reason.

// unsupported is why the lab cannot run on this system at all.
const unsupported = "the NAT lab needs Linux (network namespaces, nftables), this is " + runtime.GOOS

var errUnsupported = errors.New(unsupported)

func inNamespace(string, func() error) error { return errUnsupported }

func dieWithParent(*exec.Cmd) {}

func processGone(int) bool { return false }

func killPid(int) error { return errUnsupported }
