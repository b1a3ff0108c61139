// Package cmd holds natcheck's Cobra commands: each turns flags into a probe
// run and hands the result to a report renderer.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/natcheck/natcheck/every"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/report"
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

// exitMeanings is what each exit code means in a command's help.
var exitMeanings = map[int]string{
	ExitOK:          "answered",
	ExitFailure:     "unexpected failure (e.g. a socket could not be opened)",
	ExitUsage:       "bad usage (unknown flag, malformed server address)",
	ExitNoAnswer:    "no STUN server answered (offline, or UDP blocked)",
	ExitVerdict:     "the verdict matched --fail-on",
	ExitInterrupted: "interrupted (Ctrl-C)",
}

// commandExitCodes lists, per command, the exit codes it can return; a
// command not named here (help, completion, version, the root itself) can
// only answer, fail to write its answer, or be misused.
var commandExitCodes = map[string][]int{
	"whoami":   {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitInterrupted},
	"type":     {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitVerdict, ExitInterrupted},
	"ipv6":     {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitInterrupted},
	"tcp":      {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitInterrupted},
	"lifetime": {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitInterrupted},
	// report prints its report whatever the checks found; portmap reports
	// a missing gateway; servers asks no server unless --probe, and then
	// reports each one's silence.
	"report":  {ExitOK, ExitFailure, ExitUsage, ExitInterrupted},
	"portmap": {ExitOK, ExitFailure, ExitUsage, ExitInterrupted},
	"servers": {ExitOK, ExitFailure, ExitUsage, ExitInterrupted},
	"turn":    {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitRelayFailed, ExitInterrupted},
	"peer":    {ExitOK, ExitFailure, ExitUsage, ExitNoAnswer, ExitRelayedOnly, ExitInterrupted},
}

// everyInterrupted is ExitInterrupted for the commands with --every,
// which only Ctrl-C (or SIGTERM) ends.
const everyInterrupted = "interrupted (Ctrl-C); also how --every ends, after its last whole line"

// noAnswerPrometheus is ExitNoAnswer for the commands with --format
// prometheus, whose metrics are printed even then.
const noAnswerPrometheus = "no STUN server answered (offline, or UDP blocked); --format prometheus still prints its metrics; --every prints the error as a run and goes on"

// commandExitMeanings overrides exitMeanings for one command.
var commandExitMeanings = map[string]map[int]string{
	"whoami": {ExitNoAnswer: noAnswerPrometheus, ExitInterrupted: everyInterrupted},
	"type": {ExitNoAnswer: noAnswerPrometheus, ExitInterrupted: everyInterrupted,
		ExitVerdict: "the verdict matched --fail-on (with --every, the first run that matched ends it)"},
	"report": {ExitInterrupted: everyInterrupted},
	"turn": {
		ExitOK:          "the relay works (on every server given)",
		ExitNoAnswer:    "a TURN server did not answer over its transport (and none failed)",
		ExitRelayFailed: "a TURN server was reached but relaying failed (auth, allocation, permission, data, TLS)",
	},
	"peer": {
		ExitOK:          "connected directly (a host or reflexive pair)",
		ExitUsage:       "bad usage (also a malformed or wrong ticket)",
		ExitNoAnswer:    "no connection within --timeout",
		ExitRelayedOnly: "connected through the TURN relay only",
	},
}

// exitCodesHelp is the "Exit codes:" table of a command's help; meanings
// overrides exitMeanings.
func exitCodesHelp(codes []int, meanings map[int]string) string {
	var b strings.Builder
	b.WriteString("Exit codes:")
	for _, c := range codes {
		m, ok := meanings[c]
		if !ok {
			m = exitMeanings[c]
		}
		fmt.Fprintf(&b, "\n  %-4d %s", c, m)
	}
	return b.String()
}

// setExitCodes ends each command's help with the exit codes it can
// return. serve has its own table, set when it was made.
func setExitCodes(root *cobra.Command) {
	plain := root.UsageTemplate()
	root.SetUsageTemplate(plain + "\n" + exitCodesHelp([]int{ExitOK, ExitFailure, ExitUsage},
		map[int]string{ExitFailure: "unexpected failure (e.g. stdout could not be written)", ExitUsage: "bad usage (unknown command, flag or argument)"}) + "\n")
	for _, c := range root.Commands() {
		if codes, ok := commandExitCodes[c.Name()]; ok {
			c.SetUsageTemplate(plain + "\n" + exitCodesHelp(codes, commandExitMeanings[c.Name()]) + "\n")
		}
	}
}

// ExitError carries an exit code with the one-line message printed on stderr.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// UsageError is bad usage: an unknown command or flag, a malformed flag
// value or server address, a wrong number of arguments. Execute exits with
// ExitUsage for it, wherever in the chain of wrapped errors it is.
type UsageError struct {
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usageError makes a UsageError from a message.
func usageError(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Deps is what natcheck takes from its surroundings: main passes the
// process's streams, os.Getenv and stunclient.DefaultServers; tests pass
// buffers, a fixed environment and loopback servers, so that no test can
// reach a public server.
type Deps struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// Getenv reads an environment variable ($NATCHECK_SERVERS).
	Getenv func(string) string
	// DefaultServers is the built-in list, used when neither --server nor
	// $NATCHECK_SERVERS names a server.
	DefaultServers func() []stunclient.Server
	// Resolver looks up server names; nil means the system's resolver.
	// Tests pass one that talks to a scripted DNS server on loopback.
	Resolver stunclient.Resolver
	// HostAddrs lists the host's own addresses, which --bind must name;
	// nil means the real interfaces.
	HostAddrs func() ([]netip.Addr, error)
	// Clock is the time --every keeps; nil means the real one. Tests pass
	// a clock whose waits return at once.
	Clock every.Clock
}

// NewRoot builds the command tree.
func NewRoot(d *Deps) *cobra.Command {
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
	root.SetIn(d.In)
	root.SetOut(d.Out)
	root.SetErr(d.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newWhoAmICmd(d),
		newTypeCmd(d),
		newPortmapCmd(d),
		newIPv6Cmd(d),
		newTCPCmd(d),
		newLifetimeCmd(d),
		newReportCmd(d),
		newServersCmd(d),
		newTurnCmd(d),
		newPeerCmd(d),
		newServeCmd(d),
		newVersionCmd(d),
	)
	// Cobra adds help and completion itself when it runs; adding them now
	// lets their argument checks be typed as usage errors too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	strictHelpAndCompletion(root)
	setExitCodes(root)
	typeArgErrors(root)
	return root
}

// strictHelpAndCompletion makes "help TOPIC" and "completion SHELL" with an
// unknown topic or shell bad usage: cobra prints help for them and exits 0.
func strictHelpAndCompletion(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			show := c.Run
			c.RunE = func(c *cobra.Command, args []string) error {
				if found, _, err := c.Root().Find(args); err != nil || found == nil {
					return usageError("unknown help topic %q (see 'natcheck --help')", strings.Join(args, " "))
				}
				show(c, args)
				return nil
			}
		case "completion":
			// A command without Run is not runnable, and cobra prints its
			// help before checking its arguments (NoArgs): with a Run the
			// check comes first, so "completion foo" is an error.
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
	}
}

// typeArgErrors makes the argument check of c and of every command below
// it return a UsageError.
func typeArgErrors(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return &UsageError{Err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		typeArgErrors(sub)
	}
}

// Execute runs natcheck with args and returns the process exit code. Errors
// are printed as one line on stderr; nothing panics out of here.
func Execute(ctx context.Context, args []string, d *Deps) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(d.ErrOut, "natcheck: internal error: %v\n", r)
			code = ExitFailure
		}
	}()
	err := run(ctx, NewRoot(d), args)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(d.ErrOut, errorLine(err))
	return exitCode(ctx, err)
}

// errorLine is the one line printed on stderr for err: errors.Join and
// cobra put newlines between an error's parts.
func errorLine(err error) string {
	return "natcheck: " + report.OneLine(strings.TrimSpace(err.Error()))
}

// run runs the command args name. Bad usage, also as cobra finds it, comes
// back as a UsageError.
func run(ctx context.Context, root *cobra.Command, args []string) error {
	// Cobra creates its hidden shell-completion command only while it
	// runs, too late for typeArgErrors: its one error is a missing
	// argument. Every other command is in the tree already.
	completion := len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd)
	if !completion {
		// An unknown subcommand of the root is reported while cobra looks
		// the command up, before any hook runs: look it up first (as
		// ExecuteC will) to type that error.
		if _, _, err := root.Find(args); err != nil {
			return &UsageError{Err: err}
		}
	}
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	if err != nil && completion {
		return &UsageError{Err: err}
	}
	return err
}

// exitCode chooses the exit code for err, returned by a command run under ctx.
func exitCode(ctx context.Context, err error) int {
	var ue *UsageError
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ee):
		return ee.Code
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return ExitInterrupted
	default:
		return ExitFailure
	}
}
