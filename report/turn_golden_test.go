package report

import (
	"errors"
	"io"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/probe/turncheck"
)

// fxReportTurn is fxReport with report --turn's check of the two relays
// of fxTurn.
func fxReportTurn() FullInput {
	in := fxReport()
	in.Result.Turn = fxTurn()
	for i, c := range in.Result.Checks {
		if c.Name == diagnose.CheckTurn {
			in.Result.Checks[i] = diagnose.Check{Name: diagnose.CheckTurn, Status: diagnose.StatusDone, Note: diagnose.TurnNote(in.Result.Turn), Elapsed: ms(215.6)}
		}
	}
	return in
}

// fxTurn is a relay that works over UDP and a turns: relay whose
// certificate expired, as docs/turn.md shows them.
func fxTurn() []turncheck.Result {
	u, _ := turncheck.ParseURI("turn:turn.example.net")
	s, _ := turncheck.ParseURI("turns:turn.example.net:443?transport=tcp")
	tlsErr := errors.New("tls: failed to verify certificate: x509: certificate has expired or is not yet valid")
	return []turncheck.Result{
		{
			URI: u, Address: ap("203.0.113.10:3478"), Verdict: turncheck.Works,
			Steps: []turncheck.Step{
				{Name: turncheck.StepReach, OK: true, Elapsed: ms(12.4)},
				{Name: turncheck.StepAuth, OK: true, Elapsed: ms(12.4)},
				{Name: turncheck.StepAllocate, OK: true, Elapsed: ms(12.9)},
				{Name: turncheck.StepPermission, OK: true, Elapsed: ms(25.3)},
				{Name: turncheck.StepChannelBind, OK: true, Elapsed: ms(12.6)},
				{Name: turncheck.StepData, OK: true, Elapsed: ms(126.8)},
				{Name: turncheck.StepRefresh, OK: true, Elapsed: ms(24.7)},
				{Name: turncheck.StepDelete, OK: true, Elapsed: ms(12.2)},
			},
			Relayed: ap("203.0.113.10:49152"), Reflexive: ap("198.51.100.7:41620"), Lifetime: 600 * time.Second, Refreshed: 600 * time.Second,
			Software: "Coturn-4.6.1 'Gorst'", Realm: "example.net",
			Packets: &turncheck.Packets{Sent: 20, Forwarded: 20, Received: 20, RTT: ms(12.3), Jitter: ms(0.4)},
			Elapsed: ms(215.2),
		},
		{
			URI: s, Address: ap("203.0.113.10:443"), Verdict: turncheck.Failed, FailedStep: turncheck.StepTLS,
			Cause: "TLS certificate verification failed: the server's certificate has expired (renew it; --insecure skips the check)",
			Steps: []turncheck.Step{
				{Name: turncheck.StepReach, OK: true, Elapsed: ms(12.1)},
				{Name: turncheck.StepTLS, OK: false, Elapsed: ms(25.0), Err: tlsErr},
			},
			Elapsed: ms(37.3), Err: tlsErr,
		},
	}
}

func turnGoldens() []golden {
	return []golden{
		{"turn.txt", func(w io.Writer) error { return TurnText(w, fxTurn()[:1], false) }},
		{"turn-two.txt", func(w io.Writer) error { return TurnText(w, fxTurn(), false) }},
		{"turn-verbose.txt", func(w io.Writer) error { return TurnText(w, fxTurn(), true) }},
		{"turn.json", jsonOf(func() any { return NewTurnJSON(fxTurn(), ms(215.6)) })},
		{"turn.md", func(w io.Writer) error { return TurnMarkdown(w, fxTurn()) }},
	}
}
