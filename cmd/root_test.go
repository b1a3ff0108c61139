package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// The exit code comes from the error's type, never from its words.
func TestExitCodeFromErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, ExitOK},
		{errors.New(`unknown command "x" for "natcheck"`), ExitFailure},
		{errors.New("unknown flag: --x"), ExitFailure},
		{fmt.Errorf("wrapped: %w", &UsageError{Err: errors.New("bad")}), ExitUsage},
		{&ExitError{Code: ExitNoAnswer, Err: errors.New("silence")}, ExitNoAnswer},
		{fmt.Errorf("probe: %w", context.Canceled), ExitInterrupted},
	} {
		if got := exitCode(context.Background(), tc.err); got != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.err, got, tc.code)
		}
	}
}

// Cobra's own errors (unknown commands and flags, bad flag values, extra
// arguments, also of the commands cobra adds itself) are UsageErrors.
func TestCobraErrorsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"whoam"}, {"whoami", "x"}, {"whoami", "--bogus"}, {"whoami", "--timeout"}, {"whoami", "--timeout", "soon"},
		{"serve", "extra"}, {"completion", "bash", "x"}, {"__complete"},
		{"completion", "foo"}, {"help", "frob"}, {"help", "whoami", "--bogus"},
	} {
		root := NewRoot(testDeps(io.Discard, io.Discard, nil))
		var ue *UsageError
		if err := run(context.Background(), root, args); !errors.As(err, &ue) {
			t.Errorf("%v: %v (%T), want a *UsageError", args, err, err)
		}
	}
}

// An unknown command keeps cobra's wording and suggestions, on one line.
func TestUnknownCommandSuggests(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), []string{"whoam"}, testDeps(&out, &errOut, nil))
	want := "natcheck: unknown command \"whoam\" for \"natcheck\"; Did you mean this? whoami\n"
	if code != ExitUsage || out.Len() != 0 || errOut.String() != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out.String(), errOut.String(), want)
	}
}

// Cobra adds its hidden shell-completion command while it runs; without an
// argument it is bad usage too, and with one it answers.
func TestCompletionRequest(t *testing.T) {
	var errOut bytes.Buffer
	code := Execute(context.Background(), []string{"__complete"}, testDeps(io.Discard, &errOut, nil))
	if code != ExitUsage || !strings.Contains(errOut.String(), "requires at least 1 arg") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
	var out bytes.Buffer
	code = Execute(context.Background(), []string{"__complete", "who"}, testDeps(&out, io.Discard, nil))
	if code != ExitOK || !strings.HasPrefix(out.String(), "whoami\t") {
		t.Errorf("exit %d, stdout %q", code, out.String())
	}
}

// help and completion still answer when they are asked right.
func TestHelpAndCompletionAnswer(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "whoami"}, {"completion"}, {"completion", "bash"}} {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), args, testDeps(&out, &errOut, nil))
		if code != ExitOK || out.Len() == 0 || errOut.Len() != 0 {
			t.Errorf("%v: exit %d, %d bytes on stdout, stderr %q", args, code, out.Len(), errOut.String())
		}
	}
	var errOut bytes.Buffer
	code := Execute(context.Background(), []string{"help", "frob"}, testDeps(io.Discard, &errOut, nil))
	if want := "natcheck: unknown help topic \"frob\" (see 'natcheck --help')\n"; code != ExitUsage || errOut.String() != want {
		t.Errorf("help frob: exit %d, stderr %q, want %q", code, errOut.String(), want)
	}
}

// Each command's help lists the exit codes it can return, and only those.
func TestHelpExitCodes(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{nil, "0 1 2"},
		{[]string{"version"}, "0 1 2"},
		{[]string{"completion"}, "0 1 2"},
		{[]string{"completion", "bash"}, "0 1 2"},
		{[]string{"help"}, "0 1 2"},
		{[]string{"whoami"}, "0 1 2 3 130"},
		{[]string{"type"}, "0 1 2 3 4 130"},
		{[]string{"report"}, "0 1 2 130"},
		{[]string{"portmap"}, "0 1 2 130"},
		{[]string{"servers"}, "0 1 2 130"},
		{[]string{"ipv6"}, "0 1 2 3 130"},
		{[]string{"tcp"}, "0 1 2 3 130"},
		{[]string{"lifetime"}, "0 1 2 3 130"},
		{[]string{"serve"}, "0 1 2"},
	} {
		var out bytes.Buffer
		if code := Execute(context.Background(), append(tc.cmd, "--help"), testDeps(&out, io.Discard, nil)); code != ExitOK {
			t.Fatalf("%v --help: exit %d", tc.cmd, code)
		}
		_, table, ok := strings.Cut(out.String(), "Exit codes:\n")
		if !ok {
			t.Errorf("%v --help has no exit codes:\n%s", tc.cmd, out.String())
			continue
		}
		var codes []string
		for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
			codes = append(codes, strings.Fields(line)[0])
		}
		if got := strings.Join(codes, " "); got != tc.want {
			t.Errorf("%v --help lists exit codes %s, want %s", tc.cmd, got, tc.want)
		}
	}
}

// An error made of several (errors.Join) is one line, its parts apart.
func TestJoinedErrorIsOneLine(t *testing.T) {
	err := &ExitError{Code: ExitNoAnswer, Err: fmt.Errorf("no STUN server answered (%w)",
		errors.Join(errors.New("resolve a.invalid: no such host"), errors.New("resolve b.invalid: no such host")))}
	want := "natcheck: no STUN server answered (resolve a.invalid: no such host; resolve b.invalid: no such host)"
	if got := errorLine(err); got != want {
		t.Errorf("errorLine = %q, want %q", got, want)
	}
}
