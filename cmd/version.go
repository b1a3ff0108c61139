package cmd

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// stampedVersion is set at link time by release builds (scripts/release.sh,
// the Dockerfile):
//
//	-ldflags "-X github.com/natcheck/natcheck/cmd.stampedVersion=v1.2.0"
//
// Those builds have no module version to read (they build a source tree,
// not a downloaded module, and with -buildvcs=false), so without the stamp
// their binaries would say "(devel)".
var stampedVersion string

// versionInfo is what `natcheck version` prints: the stamped release
// version, else the module version of a `go install`ed binary, else
// "(devel)"; the VCS revision when the build recorded it.
type versionInfo struct {
	SchemaVersion int    `json:"schema_version"`
	Version       string `json:"version"`
	Revision      string `json:"revision,omitempty"`
	Modified      bool   `json:"modified,omitempty"`
	GoVersion     string `json:"go_version"`
}

func readVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionFrom(stampedVersion, bi, runtime.Version())
}

// versionFrom decides the version: a link-time stamp wins over the build
// information, whose "(devel)" (a build of a local tree) counts as none.
// bi is nil when the binary carries no build information.
func versionFrom(stamped string, bi *debug.BuildInfo, goVersion string) versionInfo {
	v := versionInfo{SchemaVersion: report.SchemaVersion, Version: "(devel)", GoVersion: goVersion}
	if bi != nil {
		v.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if stamped != "" {
		v.Version = stamped
	}
	return v
}

func newVersionCmd(d *Deps) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "version",
		Short:   "Print natcheck's version, from the build information",
		Example: "  natcheck version\n  natcheck version --json | jq -r .version",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return writeVersion(d.Out, readVersion(), asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return c
}

// writeVersion prints v as `natcheck version` does, as text or JSON.
func writeVersion(out io.Writer, v versionInfo, asJSON bool) error {
	if asJSON {
		return report.WriteJSON(out, v)
	}
	line := "natcheck " + v.Version
	if v.Revision != "" {
		line += " (" + v.Revision
		if v.Modified {
			line += ", modified"
		}
		line += ")"
	}
	_, err := fmt.Fprintf(out, "%s %s\n", line, v.GoVersion)
	return err
}
