package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/peer"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/rendezvous"
	"github.com/natcheck/natcheck/report"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// errNoPeer is a meeting whose other side never came.
var errNoPeer = errors.New("the two sides never met")

// ExitRelayedOnly is peer's "connected, but only through the TURN relay".
const ExitRelayedOnly = 6

// peerOptions is everything `natcheck peer` takes from its flags.
type peerOptions struct {
	flags     probeFlags
	turn      turnFlags
	answer    string
	via       string
	wait      time.Duration
	pings     int
	noHost    bool
	noPortMap bool
	loopback  bool
}

func newPeerCmd(d *Deps) *cobra.Command {
	o := &peerOptions{}
	c := &cobra.Command{
		Use:   "peer [TICKET | --via HOST CODE]",
		Short: "Test whether two hosts connect directly (ICE), and explain why not",
		Long: `peer runs a real connection attempt between this host and another, the way
WebRTC does (ICE, RFC 8445): each side gathers host, server-reflexive (from
the STUN servers) and, with --turn, relay candidates; meanwhile it runs
the quick NAT check and asks the router for a port mapping (UPnP IGD,
NAT-PMP, PCP; deleted at once; --no-portmap skips it). The two sides
exchange tickets; both check every candidate pair for at most --timeout; the selected pair is pinged --pings
times for round trip and loss. The outcome is direct (and over which
pair), relayed (only through TURN) or failed, compared with what the two
NAT types predict: a mismatch is itself a finding.

Without a ticket, peer prints its ticket on stderr ("ticket: ...") and
reads the other side's answer from --answer PATH (polled until it holds a
line; - for stdin) or from stdin. With the other side's TICKET, it prints
its answer ("answer: ...") and starts its checks; its --timeout runs from
the first check of the other side, which comes once the answer was given
to it (awaited at most --wait). The side that printed
the first ticket is A (controlling), the other B.

With --via HOST[:PORT], both sides meet through a natcheck serve
--rendezvous instead: the side without a CODE creates one and prints it
on stderr ("code: ..."), the other side passes it. The code (80 random
bits) names the meeting and keys its encryption: the server only holds
two sealed tickets, for at most two minutes (docs/serve.md).

Candidates are IPv4 and IPv6 (a pair forms where both sides have the
family); -4 or -6 keeps one. TURN servers and credentials as for
natcheck turn (--turn, --user, --password, --secret, ...); a turns:
server's certificate is verified against the system's CAs, or --ca FILE,
or not at all with --insecure. A TURN server that gave no relay
candidate is named with its cause in the explanation (-v: as it
happens). Ctrl-C says bye to the other side over the connection, which
then ends too.`,
		Example: `  natcheck peer                              # side A: prints a ticket, then waits for the answer
  natcheck peer AQE...                       # side B: takes A's ticket, prints the answer
  natcheck peer --answer answer.txt --json   # side A in a script
  natcheck peer --via stun.example.net       # side A: prints a code
  natcheck peer --via stun.example.net k7p2-9xqa-m3tc-f8wd   # side B
  natcheck peer --turn turn:turn.example.net --user alice --password-file pw.txt AQE...
  natcheck peer --turn turns:turn.example.net --ca corp-ca.pem --user alice --password-file pw.txt`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ticket := ""
			if len(args) == 1 {
				ticket = args[0]
			}
			return runPeer(c.Context(), d, c, o, ticket)
		},
	}
	o.flags.register(c)
	fl := c.Flags()
	fl.Lookup("timeout").Usage = "bound of the ICE checks once both sides met"
	fl.Lookup("timeout").DefValue = peer.DefaultTimeout.String()
	o.flags.timeout = peer.DefaultTimeout
	fl.Lookup("ipv4").Usage = "offer IPv4 candidates only (default: IPv4 and IPv6)"
	fl.Lookup("ipv6").Usage = "offer IPv6 candidates only, and run the NAT check over IPv6"
	o.turn.register(c, "turn", "")
	fl.StringVar(&o.answer, "answer", "", "side A: read the answer ticket from this file (polled until it holds a line; - for stdin)")
	fl.StringVar(&o.via, "via", "", "meet through a natcheck serve --rendezvous at HOST[:PORT] instead of tickets (then the argument is the CODE)")
	fl.DurationVar(&o.wait, "wait", 2*time.Minute, "how long to wait for the other side: with --via, to join; with a TICKET, for its first check (its user pasting the answer)")
	fl.IntVar(&o.pings, "pings", peer.DefaultPings, "pings over the selected pair, for round trip and loss")
	fl.BoolVar(&o.noHost, "no-host", false, "offer no host candidates (to test the reflexive paths)")
	fl.BoolVar(&o.noPortMap, "no-portmap", false, "do not ask the router for a port mapping (UPnP IGD, NAT-PMP, PCP) while gathering")
	fl.BoolVar(&o.loopback, "loopback", false, "offer loopback host candidates (both sides on one host)")
	_ = fl.MarkHidden("loopback")
	return c
}

func runPeer(parent context.Context, d *Deps, c *cobra.Command, o *peerOptions, ticket string) error {
	if o.pings < 1 || o.pings > 1000 {
		return usageError("--pings must be 1-1000, got %d", o.pings)
	}
	r, err := o.flags.resolve(d)
	if err != nil {
		return err
	}
	opts := peer.Options{Servers: r.servers, Resolver: r.resolver, Pings: o.pings, Timeout: r.timeout,
		NoHost: o.noHost, NoPortMap: o.noPortMap, Loopback: o.loopback}
	if o.flags.ipv4 || o.flags.ipv6 {
		opts.Family = r.family
	}
	if len(o.turn.servers) > 0 {
		us, to, err := o.turn.options(d, time.Now())
		if err != nil {
			return err
		}
		if err := peer.CheckTURN(us); err != nil {
			return &UsageError{Err: err}
		}
		opts.TURN, opts.TURNOptions = us, to
	}
	show := func(label string) func(string) error {
		return func(s string) error {
			_, err := fmt.Fprintf(d.ErrOut, "%s: %s\n", label, s)
			if err == nil && isTerminal(d.ErrOut) {
				if label == "ticket" {
					fmt.Fprintln(d.ErrOut, "Send this ticket to the other side, which runs: natcheck peer TICKET")
				} else {
					fmt.Fprintf(d.ErrOut, "Send this answer to the other side; the test starts when it has it (waiting up to %v).\n", o.wait)
				}
			}
			return err
		}
	}
	if o.flags.verbose {
		opts.Logf = verboseLogger(d, "peer")
	}
	if o.via != "" {
		if o.answer != "" {
			return usageError("--answer is for tickets, not for --via")
		}
		rv, err := o.rendezvous(parent, d, r, ticket, opts.Logf)
		if err != nil {
			return err
		}
		opts.Signal = rv
	} else if ticket != "" {
		if o.answer != "" {
			return usageError("--answer is for the side without a ticket")
		}
		t, err := peer.DecodeTicket(ticket)
		if err != nil {
			return &UsageError{Err: err}
		}
		if t.Answer {
			return usageError("that is an answer ticket: give it to the side that printed the first ticket (its --answer file or stdin)")
		}
		opts.Signal = &peer.TicketAnswer{Offer: t, Show: show("answer")}
		// The test starts when A has the answer: its first check tells.
		opts.AwaitPeer = o.wait
	} else {
		opts.Signal = &peer.TicketOffer{Show: show("ticket"), ReadAnswer: func(ctx context.Context) (string, error) {
			return readAnswer(ctx, d, o.answer)
		}}
	}
	res := peer.Run(parent, opts)
	if rv, ok := opts.Signal.(*peer.Rendezvous); ok && parent.Err() == nil && res.Err != nil {
		// No test ran (the meeting failed): free the code rather than let
		// it expire. After a test this side does not leave: the other
		// side's checks may still run (it met up to a poll later), and it
		// would take the leave for an interruption; the code expires
		// with the server's --rendezvous-ttl.
		_ = rv.Bye(context.WithoutCancel(parent))
	}
	if res.Err != nil {
		if errors.Is(res.Err, peer.ErrBadTicket) || errors.Is(res.Err, rendezvous.ErrBadCode) {
			return &UsageError{Err: res.Err}
		}
		if parent.Err() != nil {
			return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted")}
		}
		if errors.Is(res.Err, errNoPeer) || errors.Is(res.Err, rendezvous.ErrNoAnswer) ||
			errors.Is(res.Err, rendezvous.ErrPeerLeft) || errors.Is(res.Err, rendezvous.ErrUnknownCode) {
			// The two sides never met: no connection to test.
			return &ExitError{Code: ExitNoAnswer, Err: res.Err}
		}
		return res.Err
	}
	if o.flags.json {
		err = report.WriteJSON(d.Out, report.NewPeerJSON(res))
	} else {
		err = report.PeerText(d.Out, res, o.flags.verbose)
	}
	if err != nil {
		return err
	}
	return peerExit(res)
}

// peerExit is nil for a direct connection, else an ExitError: 6 when only
// the relay connected, 3 when nothing did.
func peerExit(r *peer.Result) error {
	switch r.Outcome {
	case nat.P2PDirect:
		return nil
	case nat.P2PRelayed:
		return &ExitError{Code: ExitRelayedOnly, Err: errors.New("connected through the relay only")}
	}
	return &ExitError{Code: ExitNoAnswer, Err: errors.New("no connection")}
}

// readAnswer reads the answer ticket: from the file path (polled every
// 100 ms until it holds a complete line), from stdin for "-" or "" (with
// a prompt on a terminal).
func readAnswer(ctx context.Context, d *Deps, path string) (string, error) {
	if path != "" && path != "-" {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(path); err == nil {
				if line, _, ok := strings.Cut(string(b), "\n"); ok {
					return line, nil
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return "", usageError("--answer: cannot read %s: %v", path, errors.Unwrap(err))
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
	}
	if path == "" && isTerminal(d.In) {
		fmt.Fprint(d.ErrOut, "answer> ")
	}
	line := make(chan string, 1)
	fail := make(chan error, 1)
	go func() {
		s, err := bufio.NewReader(d.In).ReadString('\n')
		if err != nil && (err != io.EOF || strings.TrimSpace(s) == "") {
			fail <- usageError("no answer ticket on stdin")
			return
		}
		line <- s
	}()
	select {
	case s := <-line:
		return s, nil
	case err := <-fail:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// isTerminal reports whether a stream is a terminal.
func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// rendezvous is the meeting through a natcheck serve --rendezvous at
// --via: with code empty this side creates the code and prints it, else it
// joins. The server's name is looked up as a STUN server's is.
func (o *peerOptions) rendezvous(ctx context.Context, d *Deps, r resolved, code string, logf func(string, ...any)) (*peer.Rendezvous, error) {
	srv, err := stunclient.ParseServer(o.via)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("--via: %w", err)}
	}
	if code != "" {
		if _, err := rendezvous.ParseCode(code); err != nil {
			return nil, &UsageError{Err: err}
		}
	}
	lookup, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	addrs, err := srv.Resolve(lookup, r.resolver, stunclient.IPv4)
	if err != nil {
		return nil, &ExitError{Code: ExitNoAnswer, Err: fmt.Errorf("--via: %w", err)}
	}
	client := &rendezvous.Client{Server: addrs[0]}
	var session *rendezvous.Session
	rv := &peer.Rendezvous{Creator: code == ""}
	met := func(their []byte, err error) ([]byte, error) {
		if err == nil && logf != nil {
			logf("met through the rendezvous %s after %d round trips to it (over %s)", addrs[0], session.RoundTrips(), session.Transport())
		}
		return their, err
	}
	rv.Swap = func(ctx context.Context, blob []byte) ([]byte, error) {
		if code != "" {
			s, their, err := client.Join(ctx, code, blob)
			session = s
			return met(their, err)
		}
		s, err := client.Create(ctx, blob)
		if err != nil {
			return nil, err
		}
		session = s
		fmt.Fprintf(d.ErrOut, "code: %s\n", s.Code())
		if isTerminal(d.ErrOut) {
			fmt.Fprintf(d.ErrOut, "The other side runs: natcheck peer --via %s %s\n", o.via, s.Code())
		}
		wctx, cancel := context.WithTimeout(ctx, o.wait)
		defer cancel()
		their, err := s.Wait(wctx)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil || errors.Is(err, rendezvous.ErrExpired) {
			return nil, fmt.Errorf("%w: the other side did not join within --wait %v (code %s)", errNoPeer, o.wait, s.Code())
		}
		return met(their, err)
	}
	rv.Left = func(ctx context.Context) error {
		if session == nil {
			return errors.New("no meeting")
		}
		return session.PeerLeft(ctx)
	}
	rv.Bye = func(ctx context.Context) error {
		if session == nil {
			return nil
		}
		return session.Leave(ctx)
	}
	return rv, nil
}
