package peer

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// meet runs both sides in one process, the tickets passed through
// channels as a user would paste them, and returns A's and B's results.
func meet(t *testing.T, a, b Options) (*Result, *Result) {
	t.Helper()
	return meetLate(t, a, b, 0)
}

// meetLate is meet with A's user pasting the answer paste after B printed
// it; a negative paste means never (A's run ends with its context).
func meetLate(t *testing.T, a, b Options, paste time.Duration) (*Result, *Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, answer := make(chan string, 1), make(chan string, 1)
	bDone := make(chan struct{})
	a.Signal = &TicketOffer{
		Show: func(s string) error { offer <- s; return nil },
		ReadAnswer: func(ctx context.Context) (string, error) {
			select {
			case s := <-answer:
				if paste < 0 { // never pasted: A gives up once B ended
					select {
					case <-bDone:
					case <-ctx.Done():
					}
					return "", context.Canceled
				}
				select {
				case <-time.After(paste):
				case <-ctx.Done():
					return "", ctx.Err()
				}
				return s, nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		},
	}
	bres := make(chan *Result, 1)
	go func() {
		var s string
		select {
		case s = <-offer:
		case <-ctx.Done():
			bres <- &Result{Err: ctx.Err()}
			return
		}
		tk, err := DecodeTicket(s)
		if err != nil {
			bres <- &Result{Err: err}
			return
		}
		b.Signal = &TicketAnswer{Offer: tk, Show: func(s string) error { answer <- s; return nil }}
		r := Run(ctx, b)
		close(bDone)
		bres <- r
	}()
	ra := Run(ctx, a)
	rb := <-bres
	return ra, rb
}

func checkDirect(t *testing.T, name string, r *Result, typ CandidateType) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%s: %v", name, r.Err)
	}
	if r.Outcome != nat.P2PDirect || r.Selected == nil {
		t.Fatalf("%s: outcome %s, selected %+v; pairs %+v", name, r.Outcome, r.Selected, r.Pairs)
	}
	if r.Selected.Local.Type != typ || r.Selected.Remote.Type != typ {
		t.Errorf("%s: selected %s <-> %s, want %s on both sides", name, r.Selected.Local.Type, r.Selected.Remote.Type, typ)
	}
	if r.Pings.Sent != 5 || r.Pings.Received != 5 || r.Pings.Loss != 0 || r.Pings.RTT <= 0 {
		t.Errorf("%s: pings %+v, want 5 of 5 answered with an RTT", name, r.Pings)
	}
	if r.TimeToConnect <= 0 || r.PeerLeft {
		t.Errorf("%s: time to connect %v, peer left %v", name, r.TimeToConnect, r.PeerLeft)
	}
	t.Logf("%s: %s %s <-> %s %s in %v, rtt %v; elapsed %v", name, r.Selected.Local.Type, r.Selected.Local.Addr,
		r.Selected.Remote.Type, r.Selected.Remote.Addr, r.TimeToConnect, r.Pings.RTT, r.Elapsed)
}

// TestHostPair: two agents on loopback connect over host candidates.
func TestHostPair(t *testing.T) {
	// A's router grants UPnP (a fake check: unit tests ask no real
	// gateway); B does not ask. Each side tells the other in its ticket.
	a := Options{Loopback: true, onlyIPs: net.IP.IsLoopback, Pings: 5, Timeout: 5 * time.Second, Family: stunclient.IPv4,
		PortMapCheck: func(context.Context, portmap.Options) (*portmap.Report, error) {
			return &portmap.Report{Results: []portmap.Result{{Protocol: portmap.UPnP, MappingAdded: tri.Yes}, {Protocol: portmap.PCP, MappingAdded: tri.No}}}, nil
		}}
	b := a
	b.NoPortMap = true
	ra, rb := meet(t, a, b)
	want := PortMap{Checked: true, Protocols: []portmap.Protocol{portmap.UPnP}}
	if !reflect.DeepEqual(ra.Local.PortMap, want) || !reflect.DeepEqual(rb.Remote.PortMap, want) || rb.Local.PortMap.Checked || ra.Remote.PortMap.Checked {
		t.Errorf("port mapping: A %+v, B's view of A %+v; B %+v, A's view of B %+v", ra.Local.PortMap, rb.Remote.PortMap, rb.Local.PortMap, ra.Remote.PortMap)
	}
	checkDirect(t, "A", ra, Host)
	checkDirect(t, "B", rb, Host)
	if ra.Role != Controlling || rb.Role != Controlled || ra.Meeting != MeetingTicket {
		t.Errorf("roles %s/%s, meeting %s", ra.Role, rb.Role, ra.Meeting)
	}
	// Without STUN servers nothing is known of the NATs.
	if ra.Predicted != nat.P2PUnknown || ra.Matched != tri.Unknown {
		t.Errorf("predicted %s, matched %v", ra.Predicted, ra.Matched)
	}
}

// TestSrflxPair: without host candidates the two sides connect over
// their server-reflexive candidates, from a STUN server on loopback. On
// loopback a srflx address is the socket's own address.
func TestSrflxPair(t *testing.T) {
	srv := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	o := Options{NoHost: true, NoPortMap: true, Loopback: true, onlyIPs: net.IP.IsLoopback, Pings: 5, Timeout: 5 * time.Second, Family: stunclient.IPv4,
		Servers: []stunclient.Server{stuntest.ServerAt(t, srv.Addr)}}
	ra, rb := meet(t, o, o)
	checkDirect(t, "A", ra, Srflx)
	checkDirect(t, "B", rb, Srflx)
	for _, r := range []*Result{ra, rb} {
		for _, c := range r.Local.Candidates {
			if c.Type != Srflx || c.Addr.Addr() != netip.MustParseAddr("127.0.0.1") || c.Related.Port() != c.Addr.Port() {
				t.Errorf("candidate %+v: want srflx 127.0.0.1, the same port as its base", c)
			}
		}
		if r.Local.NAT.Type == "" {
			t.Error("no NAT summary")
		}
	}
	if ra.Remote.NAT != rb.Local.NAT {
		t.Errorf("A saw B's NAT as %+v, B has %+v", ra.Remote.NAT, rb.Local.NAT)
	}
}

// TestHostPairIPv6: with IPv6 only, the two sides offer and connect over
// IPv6 host candidates (loopback ::1).
func TestHostPairIPv6(t *testing.T) {
	// One global or unique-local IPv6 address of this host (pion gathers
	// no ::1, and a link-local one shows up as peer-reflexive on the
	// other side): both sides use it and nothing else.
	var v6 net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil && n.IP.IsGlobalUnicast() {
			v6 = n.IP
			break
		}
	}
	if v6 == nil {
		t.Skip("no global or unique-local IPv6 address on this host")
	}
	o := Options{NoPortMap: true, Pings: 5, Timeout: 5 * time.Second, Family: stunclient.IPv6, onlyIPs: v6.Equal}
	ra, rb := meet(t, o, o)
	checkDirect(t, "A", ra, Host)
	checkDirect(t, "B", rb, Host)
	for _, r := range []*Result{ra, rb} {
		if a := r.Selected.Local.Addr.Addr(); !a.Is6() || a.Is4In6() {
			t.Errorf("selected local %s, want IPv6", r.Selected.Local.Addr)
		}
		for _, c := range r.Local.Candidates {
			if !c.Addr.Addr().Is6() {
				t.Errorf("candidate %s with -6", c.Addr)
			}
		}
	}
}

// TestLatePaste: the answer side's --timeout runs from the other side's
// first check: an answer pasted 3 s late (Timeout 1 s) still connects;
// one never pasted ends B after AwaitPeer, saying no check came.
func TestLatePaste(t *testing.T) {
	o := Options{Loopback: true, onlyIPs: net.IP.IsLoopback, NoPortMap: true, Pings: 5, Timeout: time.Second, Family: stunclient.IPv4}
	b := o
	b.AwaitPeer = 10 * time.Second
	ra, rb := meetLate(t, o, b, 3*time.Second)
	checkDirect(t, "A", ra, Host)
	checkDirect(t, "B", rb, Host)
	if rb.TimeToConnect > 2*time.Second {
		t.Errorf("B: time to connect %v, want it counted from A's first check", rb.TimeToConnect)
	}

	b.AwaitPeer = 500 * time.Millisecond
	_, rb = meetLate(t, o, b, -1)
	if rb.Err != nil || rb.Outcome != nat.P2PFailed || !rb.NoCheckFromPeer || !strings.Contains(rb.Explanation, "no check from A arrived") {
		t.Fatalf("B without A: err %v outcome %s no-check %v explanation %q", rb.Err, rb.Outcome, rb.NoCheckFromPeer, rb.Explanation)
	}
	t.Logf("B ended %v after its start without a check from A", rb.Elapsed.Round(time.Millisecond))
}
