package cmd

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date printed in the man pages. It is fixed so that the
// generated files change only when the commands do, which lets a test
// catch stale docs.
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// WriteDocs writes the Markdown command reference into mdDir and man pages
// into manDir, both generated from the command tree.
func WriteDocs(mdDir, manDir string) error {
	// The commands do not run here: no environment, no servers. NewRoot
	// adds the shell completion commands, so they are documented too.
	root := NewRoot(&Deps{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard,
		Getenv: func(string) string { return "" }, DefaultServers: func() []stunclient.Server { return nil }})
	disableAutoGenTag(root)
	for _, dir := range []string{mdDir, manDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := doc.GenMarkdownTree(root, mdDir); err != nil {
		return err
	}
	return doc.GenManTree(root, &doc.GenManHeader{Title: "NATCHECK", Section: "1", Date: &manDate, Source: "natcheck", Manual: "natcheck manual"}, manDir)
}

func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGenTag(sub)
	}
}
