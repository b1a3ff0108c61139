//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// labwire relays frames with AF_PACKET sockets inside a Linux network
// namespace; elsewhere it only says so (the lab skips on other systems).
func main() {
	fmt.Fprintf(os.Stderr, "labwire: needs Linux (AF_PACKET sockets, network namespaces), this is %s\n", runtime.GOOS)
	os.Exit(1)
}
