package cmd

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// versionInfo is read from the build: the module version for `go install`ed
// binaries, the VCS revision when the build recorded it.
type versionInfo struct {
	SchemaVersion int    `json:"schema_version"`
	Version       string `json:"version"`
	Revision      string `json:"revision,omitempty"`
	Modified      bool   `json:"modified,omitempty"`
	GoVersion     string `json:"go_version"`
}

func readVersion() versionInfo {
	v := versionInfo{SchemaVersion: report.SchemaVersion, Version: "(devel)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
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
