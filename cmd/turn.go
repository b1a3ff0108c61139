package cmd

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
)

// ExitRelayFailed is turn's "reached, but relaying failed".
const ExitRelayFailed = 5

type turnFlags struct {
	servers                  []string
	user, password, passFile string
	secret, secretFile       string
	ttl                      time.Duration
	ca                       string
	insecure                 bool
}

// register adds the TURN server and credential flags (turn, report --turn).
func (f *turnFlags) register(c *cobra.Command, serverFlag, serverShort string) {
	fl := c.Flags()
	fl.StringArrayVarP(&f.servers, serverFlag, serverShort, nil, "TURN server URI: turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT] (repeatable)")
	fl.StringVar(&f.user, "user", "", "TURN user name")
	fl.StringVar(&f.password, "password", "", "TURN password (visible in ps: prefer $NATCHECK_TURN_PASSWORD or --password-file)")
	fl.StringVar(&f.passFile, "password-file", "", "read the TURN password from this file")
	fl.StringVar(&f.secret, "secret", "", "TURN REST shared secret, coturn's static-auth-secret (visible in ps: prefer $NATCHECK_TURN_SECRET or --secret-file)")
	fl.StringVar(&f.secretFile, "secret-file", "", "read the TURN REST shared secret from this file")
	fl.DurationVar(&f.ttl, "ttl", 24*time.Hour, "validity of TURN REST credentials made from --secret")
	fl.StringVar(&f.ca, "ca", "", "PEM file of the CA that signed the turns: server's certificate")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the turns: server's certificate")
}

// readSecret is the first of flag value, file contents and environment
// variable. Errors name the file, never its contents.
func readSecret(flagValue, file, env string, d *Deps) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError("cannot read %s: %v", file, errors.Unwrap(err))
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return d.Getenv(env), nil
}

// options turns the flags into the URIs and the check's options.
func (f *turnFlags) options(d *Deps, now time.Time) ([]turncheck.URI, turncheck.Options, error) {
	var o turncheck.Options
	var us []turncheck.URI
	for _, s := range f.servers {
		u, err := turncheck.ParseURI(s)
		if err != nil {
			return nil, o, &UsageError{Err: err}
		}
		us = append(us, u)
	}
	secret, err := readSecret(f.secret, f.secretFile, "NATCHECK_TURN_SECRET", d)
	if err != nil {
		return nil, o, err
	}
	password, err := readSecret(f.password, f.passFile, "NATCHECK_TURN_PASSWORD", d)
	if err != nil {
		return nil, o, err
	}
	switch {
	case secret != "" && (f.password != "" || f.passFile != ""):
		return nil, o, usageError("--secret and --password are two kinds of credentials: give one")
	case secret != "":
		if f.ttl <= 0 {
			return nil, o, usageError("--ttl must be positive, got %s", f.ttl)
		}
		o.User, o.Password = turncheck.RESTCredentials(secret, f.user, f.ttl, now)
		o.REST = true
	case f.user == "":
		return nil, o, usageError("a TURN server needs credentials: --user with --password (or $NATCHECK_TURN_PASSWORD, --password-file), or --secret (or $NATCHECK_TURN_SECRET, --secret-file)")
	default:
		o.User, o.Password = f.user, password
		// REST credentials made elsewhere (a web app hands them out) come
		// as --user and --password: a refusal is then explained with the
		// clock, as for --secret.
		o.REST = turncheck.LooksREST(f.user, now)
	}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, o, usageError("--ca: cannot read %s: %v", f.ca, errors.Unwrap(err))
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return nil, o, usageError("--ca: no PEM certificate in %s", f.ca)
		}
	}
	o.Insecure = f.insecure
	o.Resolver = d.Resolver
	return us, o, nil
}

func newTurnCmd(d *Deps) *cobra.Command {
	var f turnFlags
	var packets int
	var timeout time.Duration
	var verbose, jsonOut bool
	c := &cobra.Command{
		Use:   "turn -s URI [-s URI ...]",
		Short: "Check that a TURN relay works end to end, and why not",
		Long: `turn checks a TURN relay the way a call uses it: it reaches the server
(UDP, TCP or TLS), authenticates with long-term credentials, allocates a
relayed address, makes a second allocation, permits each allocation to
talk to the other, binds a channel, and sends --packets packets from one
allocation through the relay to the other and back (loss, round trip,
jitter). It then refreshes both allocations (the lifetime granted is
reported) and deletes them, also on Ctrl-C. The first failure stops the
check and is named in plain words. IPv6 servers are given as literals:
turn:[2001:db8::1].

Credentials: --user with --password, $NATCHECK_TURN_PASSWORD or
--password-file; or TURN REST credentials (coturn use-auth-secret) made
from --secret, $NATCHECK_TURN_SECRET or --secret-file, valid for --ttl.
Values given as flags are visible to other users in ps. natcheck never
prints a password or secret.

Several -s are checked at once; --timeout bounds each server's check. A
UDP server that got no answer says whether a TCP or TLS URI of the same
host worked.
Exit code 0 when every server's relay works, 5 when one was reached but
relaying failed, 3 when the others could not be reached.`,
		Example: `  natcheck turn -s turn:turn.example.net --user alice --password-file pw.txt
  NATCHECK_TURN_SECRET=... natcheck turn -s turns:turn.example.net:443?transport=tcp --user alice
  natcheck turn -s turn:203.0.113.10 -s turns:turn.example.net --user alice --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if len(f.servers) == 0 {
				return usageError("turn needs a server: -s turn:HOST or -s turns:HOST")
			}
			if packets < 1 || packets > 10000 {
				return usageError("--packets must be 1-10000, got %d", packets)
			}
			if timeout <= 0 {
				return usageError("--timeout must be positive, got %s", timeout)
			}
			us, o, err := f.options(d, time.Now())
			if err != nil {
				return err
			}
			o.Packets = packets
			parent := c.Context()
			ctx, cancel := context.WithTimeout(parent, timeout)
			defer cancel()
			start := time.Now()
			rs := turncheck.Run(ctx, us, o)
			elapsed := time.Since(start)
			if parent.Err() != nil {
				return parent.Err()
			}
			if jsonOut {
				err = report.WriteJSON(d.Out, report.NewTurnJSON(rs, elapsed))
			} else {
				err = report.TurnText(d.Out, rs, verbose)
			}
			if err != nil {
				return err
			}
			return turnExit(rs)
		},
	}
	f.register(c, "server", "s")
	fl := c.Flags()
	fl.IntVar(&packets, "packets", turncheck.DefaultPackets, "packets sent each way through the relay")
	fl.DurationVar(&timeout, "timeout", 5*time.Second, "bound of each server's whole check")
	fl.BoolVarP(&verbose, "verbose", "v", false, "show every step")
	fl.BoolVar(&jsonOut, "json", false, "print JSON")
	return c
}

// turnExit is nil when every relay works, else an ExitError: 5 when a
// reached server failed to relay, 3 when the others were unreachable.
func turnExit(rs []turncheck.Result) error {
	failed, unreachable := 0, 0
	for _, r := range rs {
		switch r.Verdict {
		case turncheck.Works:
		case turncheck.Unreachable:
			unreachable++
		default:
			failed++
		}
	}
	switch {
	case failed > 0:
		return &ExitError{Code: ExitRelayFailed, Err: errors.New("relay failed")}
	case unreachable > 0:
		return &ExitError{Code: ExitNoAnswer, Err: errors.New("TURN server unreachable")}
	}
	return nil
}
