// Command gendocs regenerates docs/cli (Markdown) and docs/man (man pages)
// from natcheck's commands: go run ./internal/gendocs
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/natcheck/natcheck/cmd"
)

func main() {
	md, man := filepath.Join("docs", "cli"), filepath.Join("docs", "man")
	for _, dir := range []string{md, man} {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
	}
	if err := cmd.WriteDocs(md, man); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
