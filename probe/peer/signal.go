package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// Meeting is how the two sides exchanged their tickets.
type Meeting string

// The ways to meet.
const (
	MeetingTicket     Meeting = "ticket"     // tickets pasted by the users
	MeetingRendezvous Meeting = "rendezvous" // a natcheck serve --rendezvous, under a code
)

// Signal is how the two sides meet: each hands over its ticket and gets
// the other's. Run calls Exchange once, after gathering, and starts the
// ICE checks when it returns. The side that started the meeting (printed
// the first ticket, created the code) is controlling.
//
// Two implementations: TicketOffer and TicketAnswer (tickets copied by
// hand), and Rendezvous, which wraps a rendezvous client's exchange of
// blobs.
type Signal interface {
	Meeting() Meeting
	Controlling() bool
	Exchange(ctx context.Context, local *Ticket) (*Ticket, error)
}

// Leaver is a Signal that can also tell the other side that this one
// left (a rendezvous can; a pasted ticket cannot). Run calls Leave when
// it is interrupted.
type Leaver interface {
	Leave(ctx context.Context) error
}

// LeaveWatcher is a Signal that can learn that the other side left before
// the two connected (a rendezvous can): WatchLeave returns nil when it
// did, else an error when ctx ends or the watch fails.
type LeaveWatcher interface {
	WatchLeave(ctx context.Context) error
}

// TicketOffer is the side that starts a meeting by tickets: it shows its
// ticket, then reads the answer.
type TicketOffer struct {
	// Show prints the offer ticket (cmd: "ticket: <TICKET>" on stderr).
	Show func(ticket string) error
	// ReadAnswer returns the answer as the user gave it (a file, stdin).
	ReadAnswer func(ctx context.Context) (string, error)
}

func (*TicketOffer) Meeting() Meeting  { return MeetingTicket }
func (*TicketOffer) Controlling() bool { return true }

// ErrWrongTicket is an answer that does not answer this side's ticket.
var ErrWrongTicket = errors.New("wrong ticket")

// Exchange shows local with a fresh session id and returns the answer,
// which must repeat it.
func (o *TicketOffer) Exchange(ctx context.Context, local *Ticket) (*Ticket, error) {
	local.Answer = false
	if _, err := rand.Read(local.Session[:]); err != nil {
		return nil, err
	}
	s, err := local.Encode()
	if err != nil {
		return nil, err
	}
	if err := o.Show(s); err != nil {
		return nil, err
	}
	text, err := o.ReadAnswer(ctx)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTicket(text)
	switch {
	case err != nil:
		return nil, fmt.Errorf("the answer: %w", err)
	case !t.Answer:
		return nil, fmt.Errorf("%w: %w: that is a first ticket, not an answer (the other side prints its answer after taking this side's ticket)", ErrBadTicket, ErrWrongTicket)
	case t.Session != local.Session:
		return nil, fmt.Errorf("%w: %w: the answer is to another ticket (an earlier run?): give the other side this run's ticket", ErrBadTicket, ErrWrongTicket)
	}
	return t, nil
}

// TicketAnswer is the side that took the other's ticket: it shows its
// answer and returns the offer.
type TicketAnswer struct {
	Offer *Ticket
	// Show prints the answer (cmd: "answer: <TICKET>" on stderr).
	Show func(ticket string) error
}

func (*TicketAnswer) Meeting() Meeting  { return MeetingTicket }
func (*TicketAnswer) Controlling() bool { return false }

func (a *TicketAnswer) Exchange(_ context.Context, local *Ticket) (*Ticket, error) {
	local.Answer = true
	local.Session = a.Offer.Session
	s, err := local.Encode()
	if err != nil {
		return nil, err
	}
	if err := a.Show(s); err != nil {
		return nil, err
	}
	return a.Offer, nil
}

// Rendezvous meets through a rendezvous server: Swap sends this side's
// blob (Ticket.MarshalBinary) and returns the other side's, as the
// rendezvous client's Create (Controlling) or Join does under a code. The
// client encrypts; Rendezvous only encodes.
type Rendezvous struct {
	Creator bool // this side created the code: controlling
	Swap    func(ctx context.Context, blob []byte) ([]byte, error)
	// Bye, when set, tells the other side through the server that this
	// one left.
	Bye func(ctx context.Context) error
	// Left, when set, returns nil once the other side said Bye.
	Left func(ctx context.Context) error
}

func (*Rendezvous) Meeting() Meeting    { return MeetingRendezvous }
func (r *Rendezvous) Controlling() bool { return r.Creator }

func (r *Rendezvous) Exchange(ctx context.Context, local *Ticket) (*Ticket, error) {
	local.Answer = !r.Creator
	b, err := local.MarshalBinary()
	if err != nil {
		return nil, err
	}
	theirs, err := r.Swap(ctx, b)
	if err != nil {
		return nil, err
	}
	return UnmarshalTicket(theirs)
}

func (r *Rendezvous) WatchLeave(ctx context.Context) error {
	if r.Left == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return r.Left(ctx)
}

func (r *Rendezvous) Leave(ctx context.Context) error {
	if r.Bye == nil {
		return nil
	}
	return r.Bye(ctx)
}
