package cmd

import (
	"io"
	"strings"

	"github.com/natcheck/natcheck/probe/stunclient"
)

// testServers stands in for the built-in public servers: a dead loopback
// port, so that a test that forgot --server gets no answer instead of
// contacting the internet.
func testServers() []stunclient.Server {
	return []stunclient.Server{{Input: "test-guard", Host: "127.0.0.1", Port: 9}}
}

// testDeps writes to out and errOut, reads the environment from env and
// has testServers as the built-in list.
func testDeps(out, errOut io.Writer, env map[string]string) *Deps {
	return &Deps{
		In: strings.NewReader(""), Out: out, ErrOut: errOut,
		Getenv:         func(k string) string { return env[k] },
		DefaultServers: testServers,
	}
}
