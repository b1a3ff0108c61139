// Package cmd holds natcheck's Cobra commands: each turns flags into a probe
// run and hands the result to a report renderer.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes. They are part of the command-line contract: scripts test them,
// so a code never changes meaning once released.
const (
	ExitOK          = 0   // the command answered
	ExitFailure     = 1   // an unexpected failure (a socket could not be opened, ...)
	ExitUsage       = 2   // bad flags or arguments
	ExitNoAnswer    = 3   // no STUN server answered: offline, or UDP and TCP blocked
	ExitVerdict     = 4   // the verdict matched --fail-on
	ExitInterrupted = 130 // cancelled by Ctrl-C or SIGTERM (128 + SIGINT)
)

const exitCodesHelp = `Exit codes:
  0    answered
  1    unexpected failure (e.g. a socket could not be opened)
  2    bad usage (unknown flag, malformed server address)
  3    no STUN server answered (offline, or UDP blocked)
  4    the verdict matched --fail-on (natcheck type)
  130  interrupted (Ctrl-C)`

// ExitError carries an exit code with the one-line message printed on stderr.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks an error as bad usage (exit code 2).
func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// Streams are the I/O a command writes to; tests pass buffers.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// NewRootCmd builds the command tree.
func NewRootCmd(s *Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "natcheck",
		Short: "Diagnose NAT traversal with STUN",
		Long: `natcheck asks STUN servers which public address this host appears from,
compares it with the host's own addresses, and tells whether the host is
behind NAT, of which kind, and what that means for peer-to-peer connections.`,
		Example: `  natcheck whoami              # print the public IP address
  natcheck whoami --json       # machine-readable answer
  natcheck whoami -s stun.example.net:3478`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a subcommand, print help rather than an error.
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unknown command %q for natcheck", args[0])
			}
			return c.Help()
		},
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.SetUsageTemplate(root.UsageTemplate() + "\n" + exitCodesHelp + "\n")
	for _, add := range subcommands {
		root.AddCommand(add(s))
	}
	return root
}

// subcommands is filled by each command's file in init, so that commands
// written in parallel do not edit one shared list.
var subcommands []func(*Streams) *cobra.Command

func register(f func(*Streams) *cobra.Command) { subcommands = append(subcommands, f) }

// Execute runs natcheck with args and returns the process exit code. Errors
// are printed as one line on stderr; nothing panics out of here.
func Execute(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) (code int) {
	s := &Streams{In: in, Out: out, ErrOut: errOut}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(errOut, "natcheck: internal error: %v\n", r)
			code = ExitFailure
		}
	}()
	root := NewRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	msg := strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " "))
	fmt.Fprintf(errOut, "natcheck: %s\n", msg)
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return ExitInterrupted
	case isCobraUsageError(err):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// isCobraUsageError recognises the errors cobra returns for unknown commands
// and bad argument counts, which do not pass through the flag error func.
func isCobraUsageError(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.Contains(m, "accepts ") ||
		strings.Contains(m, "requires at least") || strings.Contains(m, "unknown flag")
}
