package cmd

import (
	"os"
	"testing"

	"github.com/natcheck/natcheck/probe/stunclient"
)

// TestMain replaces the built-in public servers by a dead loopback port: a
// test that forgot --server gets no answer instead of contacting the
// internet.
func TestMain(m *testing.M) {
	defaultServers = func() []stunclient.Server {
		return []stunclient.Server{{Input: "test-guard", Host: "127.0.0.1", Port: 9}}
	}
	os.Exit(m.Run())
}
