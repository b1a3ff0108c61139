package cmd

import (
	"runtime/debug"
	"testing"
)

// TestVersionFrom checks which version `natcheck version` shows: a release
// build's link-time stamp, else the module version, else "(devel)".
func TestVersionFrom(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs.revision", Value: "e9db595c3b1f0a8d4e2f7a6b5c4d3e2f1a0b9c8d"},
		{Key: "vcs.modified", Value: "true"},
	}
	installed := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/natcheck/natcheck", Version: "v0.9.0"}}
	pseudo := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201120000-e9db595c3b1f+dirty"}, Settings: vcs}
	devel := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	empty := &debug.BuildInfo{GoVersion: "go1.26.8"}
	for _, tc := range []struct {
		name     string
		stamped  string
		bi       *debug.BuildInfo
		version  string
		revision string
		modified bool
		goVer    string
	}{
		{"release archive: the stamp, nothing else recorded", "v1.2.0", devel, "v1.2.0", "", false, "go1.26.8"},
		{"stamp wins over the module version", "v1.2.0", installed, "v1.2.0", "", false, "go1.26.8"},
		{"stamp wins over a VCS pseudo-version, revision kept", "v1.2.0-rc.1", pseudo, "v1.2.0-rc.1", "e9db595c3b1f0a8d4e2f7a6b5c4d3e2f1a0b9c8d", true, "go1.26.8"},
		{"go install: the module version", "", installed, "v0.9.0", "", false, "go1.26.8"},
		{"go build in a git checkout: the pseudo-version and revision", "", pseudo, "v0.0.0-20261201120000-e9db595c3b1f+dirty", "e9db595c3b1f0a8d4e2f7a6b5c4d3e2f1a0b9c8d", true, "go1.26.8"},
		{"local tree without VCS", "", devel, "(devel)", "", false, "go1.26.8"},
		{"empty module version", "", empty, "(devel)", "", false, "go1.26.8"},
		{"no build information, stamped", "v1.2.0", nil, "v1.2.0", "", false, "go1.99"},
		{"no build information at all", "", nil, "(devel)", "", false, "go1.99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := versionFrom(tc.stamped, tc.bi, "go1.99")
			if v.Version != tc.version || v.Revision != tc.revision || v.Modified != tc.modified || v.GoVersion != tc.goVer {
				t.Errorf("got version %q revision %q modified %v go %q, want %q %q %v %q",
					v.Version, v.Revision, v.Modified, v.GoVersion, tc.version, tc.revision, tc.modified, tc.goVer)
			}
		})
	}
}
