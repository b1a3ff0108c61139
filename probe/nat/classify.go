package nat

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
)

// Mapping is a NAT's mapping behaviour (RFC 4787 section 4.1).
type Mapping string

// Filtering is a NAT's filtering behaviour (RFC 4787 section 5).
type Filtering string

// The behaviours RFC 4787 names for mapping and filtering alike. They are
// untyped so that each serves as a Mapping and as a Filtering.
const (
	EndpointIndependent     = "endpoint-independent"
	AddressDependent        = "address-dependent"
	AddressAndPortDependent = "address-and-port-dependent"
)

// MappingUnknown and FilteringUnknown are a behaviour that could not be told.
const (
	MappingUnknown   Mapping   = "unknown"
	FilteringUnknown Filtering = "unknown"
)

// NATType is a verdict's name for the whole combination.
type NATType string

// NAT types for Verdict.Type, in RFC 3489 vocabulary plus the cases that
// vocabulary has no name for.
const (
	TypeOpenInternet       NATType = "open-internet"
	TypeFullCone           NATType = "full-cone"
	TypeRestrictedCone     NATType = "restricted-cone"
	TypePortRestrictedCone NATType = "port-restricted-cone"
	TypeSymmetric          NATType = "symmetric"
	TypeSymmetricFirewall  NATType = "symmetric-udp-firewall"
	TypeUDPBlocked         NATType = "udp-blocked"
	TypeUnknown            NATType = "unknown"
)

// Types lists every value Verdict.Type can take, for flag validation.
var Types = []NATType{TypeOpenInternet, TypeFullCone, TypeRestrictedCone, TypePortRestrictedCone,
	TypeSymmetric, TypeSymmetricFirewall, TypeUDPBlocked, TypeUnknown}

// RFC5780 is how far a server's RFC 5780 support (OTHER-ADDRESS and
// CHANGE-REQUEST) goes.
type RFC5780 string

// The degrees of RFC 5780 support.
const (
	// RFC5780Verified: a CHANGE-REQUEST reply really came from the changed address.
	RFC5780Verified RFC5780 = "verified"
	// RFC5780Advertised: a valid OTHER-ADDRESS, unproven from here.
	RFC5780Advertised RFC5780 = "advertised"
	// RFC5780Invalid: OTHER-ADDRESS without a second IP and port, or a
	// changed reply from the wrong place or with an error.
	RFC5780Invalid RFC5780 = "invalid"
	// RFC5780Absent: the server answered without OTHER-ADDRESS.
	RFC5780Absent RFC5780 = "absent"
	// RFC5780Unknown: the server never answered, so its support could not
	// be told. Classify never returns it; a ServerCheck may have it.
	RFC5780Unknown RFC5780 = "unknown"
)

// TestName names one test: a TestResult of a behaviour run, or a
// connection of the TCP mapping test (stunclient.TCPBindingResult).
type TestName string

// Names of the tests a behaviour run makes. Each is one entry in
// Observations.Tests.
const (
	TestBinding          TestName = "binding"                  // test I: primary server, from the mapping socket
	TestServer           TestName = "binding-other-server"     // another server, from the mapping socket
	TestMappingAltIP     TestName = "mapping-alt-ip"           // test II: alternate IP, primary port, mapping socket
	TestMappingAltIPPort TestName = "mapping-alt-ip-port"      // test III: OTHER-ADDRESS, mapping socket
	TestFilterIPPort     TestName = "filtering-change-ip-port" // fresh socket: CHANGE-REQUEST IP+port to primary
	TestFilterPort       TestName = "filtering-change-port"    // fresh socket: CHANGE-REQUEST port to primary
	TestFilterVerify     TestName = "filtering-verify"         // fresh socket: opens OTHER-ADDRESS, then CHANGE IP+port
	TestHairpin          TestName = "hairpin"                  // a second socket sends to the first one's mapping
	TestTCP              TestName = "binding-tcp"              // STUN over TCP, run when UDP got no answer
	// TestRepeat asks a destination of the mapping socket (a server of the
	// binding round, test II's or test III's address) once more: a server
	// whose two answers differ is not believed.
	TestRepeat TestName = "binding-repeat"
)

// Names of the connections of the TCP mapping test (probe.RunTCPMapping).
const (
	TCPProbe       TestName = "probe"        // a plain binding per server, from a fresh port
	TCPPrimary     TestName = "primary"      // the first answering server, from the shared port
	TCPAltIP       TestName = "alt-ip"       // its alternate IP at the primary port, from the shared port
	TCPAltIPPort   TestName = "alt-ip-port"  // its OTHER-ADDRESS, from the shared port
	TCPOtherServer TestName = "other-server" // another server on another IP, from the shared port
)

// ChangeFlags are the CHANGE-REQUEST flags of RFC 5780 section 7.2.
type ChangeFlags uint32

const (
	ChangePort ChangeFlags = 0x02
	ChangeIP   ChangeFlags = 0x04
)

// TestResult is the raw observation of one test: what was sent from where,
// and what came back from where.
type TestResult struct {
	Name     TestName
	Local    netip.AddrPort // the socket the test used
	To       netip.AddrPort // where the request went
	Change   ChangeFlags    // CHANGE-REQUEST flags sent, 0 = none
	Expect   netip.AddrPort // for CHANGE-REQUEST tests: the source a genuine reply has
	Replied  bool
	From     netip.AddrPort // where the reply really came from
	RTT      time.Duration
	Attempts int
	// Attributes of the reply, zero if absent.
	XORMapped, Mapped, OtherAddress netip.AddrPort
	ErrorCode                       int
	Err                             error // why there is no reply, if known
	// Listened is how long a test that got no reply listened after its
	// first copy; silence shorter than twice a changed reply's round trip
	// proves nothing.
	Listened time.Duration
	// Witnessed counts, for a CHANGE-REQUEST test, plain Binding requests
	// sent from the same socket just after its copies that the server
	// answered: proof that the server was answering this socket then, so
	// that silence is the NAT's and not a rate limiter's.
	Witnessed int
}

// Public is the mapped address the reply reported: XOR-MAPPED-ADDRESS,
// which ALGs cannot rewrite, else the RFC 3489 MAPPED-ADDRESS.
func (t TestResult) Public() netip.AddrPort { return MappedAddress(t.XORMapped, t.Mapped) }

// MappedAddress is the mapped address a reply reported: xorMapped
// (XOR-MAPPED-ADDRESS, which ALGs cannot rewrite) when valid, else mapped
// (the RFC 3489 MAPPED-ADDRESS).
func MappedAddress(xorMapped, mapped netip.AddrPort) netip.AddrPort {
	if xorMapped.IsValid() {
		return xorMapped
	}
	return mapped
}

// HostAddr is one address of a local interface.
type HostAddr struct {
	Addr   netip.Addr
	Iface  string
	Tunnel bool // point-to-point or VPN interface (tailscale, wireguard, tun)
}

// Hop is one answer of the TTL-limited probe: the router that reported
// "time exceeded" for a datagram sent with this TTL.
type Hop struct {
	TTL  int
	From netip.Addr
}

// Observations is everything the behaviour tests saw. Classify is a pure
// function of it, so every verdict can be tested from a table.
type Observations struct {
	Tests       []TestResult
	RouteSource netip.Addr // source address of the route to the primary server
	HostAddrs   []HostAddr // every interface address of the host
	// TTL-limited probe (Linux only). HopsTested is false when it did not
	// run; ReachedTTL is the smallest TTL the server itself answered (0: none).
	HopsTested bool
	Hops       []Hop
	ReachedTTL int
}

// Test returns the named test, or nil when it did not run.
func (o *Observations) Test(name TestName) *TestResult {
	for i := range o.Tests {
		if o.Tests[i].Name == name {
			return &o.Tests[i]
		}
	}
	return nil
}

func (o *Observations) replied(name TestName) *TestResult {
	if t := o.Test(name); t != nil && t.Replied && t.ErrorCode == 0 {
		return t
	}
	return nil
}

// Verdict is the classification of a run. Tri-state findings are
// tri.Unknown when not tested or when they could not be told, never No.
type Verdict struct {
	Type      NATType
	NAT       tri.Bool
	Mapping   Mapping
	Filtering Filtering
	Public    netip.AddrPort // mapped address seen by the primary server
	Local     netip.AddrPort // the mapping socket's address (route source if bound to the wildcard)

	PortPreservation tri.Bool
	Hairpinning      tri.Bool
	CGNAT            tri.Bool
	ALG              tri.Bool
	// MappingVariesByDestIP is set when two servers on different IPs saw
	// different mappings, whether or not mapping could be named further.
	MappingVariesByDestIP tri.Bool
	RFC5780               RFC5780 // the primary server's support

	Evidence []string // one line per finding, saying what it rests on
	Outlook  string   // what this means for peer-to-peer connections
	// Servers is what each server told the mapping socket, and whether
	// its mapping evidence was used (ServerViews).
	Servers []ServerView
}

// Classify turns observations into a verdict. It never guesses: a finding
// whose evidence is missing or contradicted is unknown.
//
// Each finding is a function of the observations and of the findings it
// depends on, passed in explicitly; it returns its value and its evidence
// line ("" for none). Classify only assembles them, evidence in the order
// NAT, mapping, filtering, port preservation, hairpinning, ALG, carrier NAT.
func Classify(o Observations) Verdict {
	support, supportWhy := RFC5780Support(o)
	if firstReply(&o) == nil {
		return classifyNoUDP(&o, support)
	}
	// Mapping evidence comes only from servers that agree with themselves:
	// the addresses, NAT, mapping, port preservation and ALG findings read
	// the trusted observations; filtering (where replies came from) and
	// hairpinning read them all.
	views := ServerViews(o)
	to := trusted(o, views)
	cons := consistencyEvidence(views)
	bind := firstReply(&to)
	if bind == nil {
		filtered, filteringWhy := filtering(&o, MappingUnknown, support, supportWhy)
		hairpin, hairpinWhy := hairpinning(&o, tri.Unknown)
		v := Verdict{Type: TypeUnknown, NAT: tri.Unknown, Mapping: MappingUnknown, Filtering: filtered,
			Hairpinning: hairpin, RFC5780: support, Servers: views,
			Evidence: lines(append(cons, "NAT: unknown, no server's mapped address can be believed",
				"mapping: unknown, no server's mapping evidence can be used", filteringWhy, hairpinWhy)...),
			Outlook: outlook(TypeUnknown)}
		return v
	}
	public, local := Unmap(bind.Public()), localOf(&to, bind.Local)
	nat, natWhy := isNAT(&to, public, local)
	mapped, varies, mappingWhy := mapping(&to, nat)
	filtered, filteringWhy := filtering(&o, mapped, support, supportWhy)
	pp, ppWhy := portPreservation(&to, public, local)
	hairpin, hairpinWhy := hairpinning(&o, nat)
	alg, algWhy := alg(&to)
	cgnat, cgnatWhy := cgnat(&o, nat)
	typ := classicType(nat, mapped, filtered, varies)
	return Verdict{
		Type: typ, NAT: nat, Mapping: mapped, Filtering: filtered, Public: public, Local: local,
		PortPreservation: pp, Hairpinning: hairpin, CGNAT: cgnat, ALG: alg,
		MappingVariesByDestIP: varies, RFC5780: support, Servers: views,
		Evidence: lines(append(cons, natWhy, mappingWhy, filteringWhy, ppWhy, hairpinWhy, algWhy, cgnatWhy)...),
		Outlook:  outlook(typ),
	}
}

// classifyNoUDP is the verdict of a run where no UDP binding was answered:
// STUN over TCP tells "UDP blocked" apart from "offline".
func classifyNoUDP(o *Observations, support RFC5780) Verdict {
	v := Verdict{Type: TypeUnknown, Mapping: MappingUnknown, Filtering: FilteringUnknown, RFC5780: support}
	tcp := o.replied(TestTCP)
	if tcp == nil || !tcp.Public().IsValid() {
		v.Evidence = []string{"no STUN server answered over UDP or TCP"}
		v.Outlook = outlook(v.Type)
		return v
	}
	v.Type = TypeUDPBlocked
	v.Public = Unmap(tcp.Public())
	v.Local = localOf(o, tcp.Local)
	blocked := fmt.Sprintf("UDP: no answer from any server; TCP: %s answered, saw %s", addr(tcp.To), addr(v.Public))
	var natWhy, cgnatWhy string
	v.NAT, natWhy = isNAT(o, v.Public, v.Local)
	v.CGNAT, cgnatWhy = cgnat(o, v.NAT)
	v.Evidence = lines(blocked, natWhy, cgnatWhy)
	v.Outlook = outlook(v.Type)
	return v
}

// lines is the evidence of the findings that have some, in order.
func lines(whys ...string) []string {
	out := make([]string, 0, len(whys))
	for _, w := range whys {
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// firstReply is the binding answer the verdict's addresses come from: the
// primary server's, else any other server's.
func firstReply(o *Observations) *TestResult {
	if t := o.replied(TestBinding); t != nil && t.Public().IsValid() {
		return t
	}
	for i := range o.Tests {
		t := &o.Tests[i]
		if t.Name == TestServer && t.Replied && t.ErrorCode == 0 && t.Public().IsValid() {
			return t
		}
	}
	return nil
}

func localOf(o *Observations, l netip.AddrPort) netip.AddrPort {
	l = Unmap(l)
	if (!l.Addr().IsValid() || l.Addr().IsUnspecified()) && o.RouteSource.IsValid() {
		return netip.AddrPortFrom(o.RouteSource.Unmap(), l.Port())
	}
	return l
}

// isNAT compares the mapped address with the host's own addresses: the
// route's real source and every interface address, never the wildcard.
func isNAT(o *Observations, public, local netip.AddrPort) (tri.Bool, string) {
	pub := public.Addr()
	own := false
	var cands []netip.Addr
	if o.RouteSource.IsValid() {
		cands = append(cands, o.RouteSource.Unmap())
	}
	for _, h := range o.HostAddrs {
		cands = append(cands, h.Addr.Unmap())
	}
	if len(cands) == 0 {
		return tri.Unknown, "NAT: unknown, the host's own addresses could not be read"
	}
	for _, a := range cands {
		if a.IsValid() && !a.IsUnspecified() && a == pub {
			own = true
		}
	}
	switch {
	case !own:
		return tri.Yes, fmt.Sprintf("NAT: yes, public address %s is not one of this host's addresses (local %s)", addr(public), addr(local))
	case local.Port() != 0 && public.Port() != local.Port():
		return tri.Yes, fmt.Sprintf("NAT: yes, public address is this host's own but the port is translated (%d -> %d)", local.Port(), public.Port())
	default:
		return tri.No, fmt.Sprintf("NAT: no, public address %s is this host's own", addr(public))
	}
}

// mapping decides the mapping behaviour from RFC 5780 tests I-III, or
// failing those, from the mappings different servers saw from one socket.
// varies says whether the mapping differed towards two destination IPs.
func mapping(o *Observations, nat tri.Bool) (m Mapping, varies tri.Bool, why string) {
	if nat == tri.No {
		return EndpointIndependent, tri.Unknown, "mapping: endpoint-independent, no address translation"
	}
	t1, t2, t3 := o.replied(TestBinding), o.replied(TestMappingAltIP), o.replied(TestMappingAltIPPort)
	if t1 == nil || t2 == nil || Unmap(t2.To).Addr() == Unmap(t1.To).Addr() {
		// Without test II towards another IP (an OTHER-ADDRESS on the
		// primary's own IP proves nothing), plain servers must tell.
		return plainMapping(o)
	}
	m1, m2 := Unmap(t1.Public()), Unmap(t2.Public())
	if m1 == m2 {
		// Another server that saw a different mapping from the same
		// socket (and was not caught contradicting itself) means the
		// mapping varies by destination: a router with two uplinks, say.
		if d := otherMapping(o, t1, m1); d != nil {
			if d.To.Addr().Unmap() == t1.To.Addr().Unmap() || d.To.Addr().Unmap() == t2.To.Addr().Unmap() {
				return MappingUnknown, tri.Unknown, fmt.Sprintf("mapping: unknown, %s and %s both saw %s but %s, on one of their IPs, saw %s", addr(t1.To), addr(t2.To), addr(m1), addr(d.To), addr(d.Public()))
			}
			return AddressDependent, tri.Yes, fmt.Sprintf("mapping: address-dependent, %s and %s both saw %s but %s saw %s", addr(t1.To), addr(t2.To), addr(m1), addr(d.To), addr(d.Public()))
		}
		return EndpointIndependent, tri.No, fmt.Sprintf("mapping: endpoint-independent, %s and %s both saw %s", addr(t1.To), addr(t2.To), addr(m1))
	}
	if t3 == nil {
		return MappingUnknown, tri.Yes, fmt.Sprintf("mapping: varies by destination IP (%s saw %s, %s saw %s); no answer from %s to tell port dependence", addr(t1.To), addr(m1), addr(t2.To), addr(m2), TestMappingAltIPPort)
	}
	m3 := Unmap(t3.Public())
	if m2 == m3 {
		return AddressDependent, tri.Yes, fmt.Sprintf("mapping: address-dependent, %s saw %s, %s and %s saw %s", addr(t1.To), addr(m1), addr(t2.To), addr(t3.To), addr(m2))
	}
	return AddressAndPortDependent, tri.Yes, fmt.Sprintf("mapping: address-and-port-dependent, %s saw %s, %s saw %s, %s saw %s", addr(t1.To), addr(m1), addr(t2.To), addr(m2), addr(t3.To), addr(m3))
}

// otherMapping is an answer from another server than t1's to the mapping
// socket that names another mapping than m, or nil.
func otherMapping(o *Observations, t1 *TestResult, m netip.AddrPort) *TestResult {
	own := map[netip.AddrPort]bool{Unmap(t1.To): true}
	if other := Unmap(t1.OtherAddress); other.IsValid() {
		own[other] = true
		own[netip.AddrPortFrom(other.Addr(), t1.To.Port())] = true
	}
	for i := range o.Tests {
		t := &o.Tests[i]
		if (t.Name == TestServer || t.Name == TestRepeat) && !own[Unmap(t.To)] && t.Replied && t.ErrorCode == 0 &&
			t.Public().IsValid() && Unmap(t.Public()) != m {
			return t
		}
	}
	return nil
}

// plainMapping compares the mappings that plain servers saw from the one
// mapping socket. Servers on two IPs tell whether mapping varies by
// address; two servers on one IP with different ports tell port dependence.
func plainMapping(o *Observations) (m Mapping, varies tri.Bool, why string) {
	var seen []*TestResult
	for i := range o.Tests {
		t := &o.Tests[i]
		if (t.Name == TestBinding || t.Name == TestServer) && t.Replied && t.ErrorCode == 0 && t.Public().IsValid() {
			seen = append(seen, t)
		}
	}
	var sameIP, diffIP [2]*TestResult
	for i, a := range seen {
		for _, b := range seen[i+1:] {
			switch {
			case a.To.Addr() != b.To.Addr() && diffIP[0] == nil:
				diffIP = [2]*TestResult{a, b}
			case a.To.Addr() == b.To.Addr() && a.To.Port() != b.To.Port() && sameIP[0] == nil:
				sameIP = [2]*TestResult{a, b}
			}
		}
	}
	if diffIP[0] == nil {
		return MappingUnknown, tri.Unknown, "mapping: unknown, no server with RFC 5780 support and no two servers on different IPs answered"
	}
	a, b := diffIP[0], diffIP[1]
	if Unmap(a.Public()) == Unmap(b.Public()) {
		return EndpointIndependent, tri.No, fmt.Sprintf("mapping: endpoint-independent, %s and %s both saw %s", addr(a.To), addr(b.To), addr(a.Public()))
	}
	diff := fmt.Sprintf("%s saw %s, %s saw %s", addr(a.To), addr(a.Public()), addr(b.To), addr(b.Public()))
	switch {
	case sameIP[0] == nil:
		return MappingUnknown, tri.Yes, "mapping: varies by destination (" + diff + "); no second port on one server to tell address from address-and-port dependence"
	case Unmap(sameIP[0].Public()) == Unmap(sameIP[1].Public()):
		return AddressDependent, tri.Yes, "mapping: address-dependent (" + diff + "; same mapping towards two ports of " + sameIP[0].To.Addr().Unmap().String() + ")"
	}
	return AddressAndPortDependent, tri.Yes, "mapping: address-and-port-dependent (" + diff + "; different mappings towards two ports of " + sameIP[0].To.Addr().Unmap().String() + ")"
}

// RFC5780Support tells how far the primary server supports RFC 5780, from
// its binding answer (OTHER-ADDRESS) and the CHANGE-REQUEST tests' replies,
// and why. It is Classify's Verdict.RFC5780, without the rest of the
// verdict: absent when no server answered a UDP binding at all.
func RFC5780Support(o Observations) (RFC5780, string) {
	if firstReply(&o) == nil {
		return RFC5780Absent, "no STUN server answered a binding request over UDP"
	}
	t1 := o.replied(TestBinding)
	if t1 == nil || !t1.OtherAddress.IsValid() {
		return RFC5780Absent, "no server advertised RFC 5780 support (OTHER-ADDRESS)"
	}
	prim, other := Unmap(t1.To), Unmap(t1.OtherAddress)
	if other.Addr() == prim.Addr() || other.Port() == prim.Port() {
		return RFC5780Invalid, fmt.Sprintf("server %s advertises OTHER-ADDRESS %s without a second IP and port (RFC 5780 section 7.4)", addr(prim), addr(other))
	}
	support := RFC5780Advertised
	why := fmt.Sprintf("server %s advertises OTHER-ADDRESS %s; no CHANGE-REQUEST reply proved it", addr(prim), addr(other))
	// A reply from anywhere but the changed address means the server
	// ignored the CHANGE-REQUEST: its answers say nothing about the filter.
	for _, t := range []*TestResult{o.Test(TestFilterIPPort), o.Test(TestFilterPort), o.Test(TestFilterVerify)} {
		if t == nil || !t.Replied {
			continue
		}
		if t.ErrorCode != 0 || Unmap(t.From) != Unmap(t.Expect) {
			what := fmt.Sprintf("came from %s instead of %s", addr(t.From), addr(t.Expect))
			if t.ErrorCode != 0 {
				what = fmt.Sprintf("was error %d", t.ErrorCode)
			}
			return RFC5780Invalid, fmt.Sprintf("server %s does not honour CHANGE-REQUEST (the reply to %s %s)", addr(prim), t.Name, what)
		}
		if support != RFC5780Verified {
			support = RFC5780Verified
			why = fmt.Sprintf("server %s honours CHANGE-REQUEST (the reply to %s came from %s)", addr(prim), t.Name, addr(t.From))
		}
	}
	return support, why
}

// filtering decides the filtering behaviour from CHANGE-REQUEST tests, and
// only when the server has proven or credibly advertised RFC 5780 support.
// It needs the mapping (an endpoint-independent one makes a silent verify
// test telling) and the server's support with its reason, as
// RFC5780Support tells them.
func filtering(o *Observations, m Mapping, support RFC5780, supportWhy string) (Filtering, string) {
	if support != RFC5780Advertised && support != RFC5780Verified {
		return FilteringUnknown, "filtering: unknown, " + supportWhy
	}
	t1 := o.replied(TestBinding)
	prim, other := Unmap(t1.To), Unmap(t1.OtherAddress)
	ipPort, port, verify := o.Test(TestFilterIPPort), o.Test(TestFilterPort), o.Test(TestFilterVerify)
	switch {
	case ipPort == nil || port == nil:
		return FilteringUnknown, "filtering: unknown, the CHANGE-REQUEST tests did not run"
	case ipPort.Replied:
		return EndpointIndependent, fmt.Sprintf("filtering: endpoint-independent, a reply from %s (IP and port never contacted) came through", addr(ipPort.From))
	}
	// From here the IP+port test got silence, after its retransmissions.
	// Silence only counts if the server was answering the silent sockets
	// at the time (a rate limiter's silence is not the NAT's), if it
	// lasted well beyond the time the server takes to send a changed
	// reply, and if the server is known to honour CHANGE-REQUEST.
	silent := []*TestResult{ipPort}
	if !port.Replied {
		silent = append(silent, port)
	}
	slow := slowestChanged(o)
	for _, t := range silent {
		if t.Witnessed == 0 {
			return FilteringUnknown, fmt.Sprintf("filtering: unknown, %s answered none of the plain requests sent beside the CHANGE-REQUESTs of %s: its silence may be a rate limit, not the NAT", addr(prim), t.Name)
		}
		if t.Listened > 0 && t.Listened < 2*slow {
			return FilteringUnknown, fmt.Sprintf("filtering: unknown, a changed reply took %v, too slow for the %v of silence of %s to tell", slow.Round(time.Millisecond), t.Listened.Round(time.Millisecond), t.Name)
		}
	}
	proven := verify != nil && verify.Replied
	if !proven && m == EndpointIndependent {
		// With endpoint-independent mapping the verify test (which opened
		// the filter for OTHER-ADDRESS first) must get through; that it did
		// not means the server drops (or delays) CHANGE-REQUESTs.
		return FilteringUnknown, fmt.Sprintf("filtering: unknown, %s did not answer a CHANGE-REQUEST even after the filter was opened for %s", addr(prim), addr(other))
	}
	if !proven && !port.Replied && !altAnswered(o) {
		return FilteringUnknown, fmt.Sprintf("filtering: unknown, the alternate address %s never answered", addr(other))
	}
	basis := fmt.Sprintf("after %d transmissions", ipPort.Attempts)
	if !proven {
		basis += "; the server's support is advertised, not provable through a NAT whose mapping varies"
	}
	if port.Replied {
		return AddressDependent, fmt.Sprintf("filtering: address-dependent, a reply from %s (known IP, new port) came through, none from %s (%s)", addr(port.From), addr(ipPort.Expect), basis)
	}
	return AddressAndPortDependent, fmt.Sprintf("filtering: address-and-port-dependent, no reply from %s nor %s came through (%s)", addr(ipPort.Expect), addr(port.Expect), basis)
}

// slowestChanged is the longest round trip of a reply to a CHANGE-REQUEST.
func slowestChanged(o *Observations) time.Duration {
	var d time.Duration
	for _, t := range []*TestResult{o.Test(TestFilterIPPort), o.Test(TestFilterPort), o.Test(TestFilterVerify)} {
		if t != nil && t.Replied && t.RTT > d {
			d = t.RTT
		}
	}
	return d
}

// altAnswered tells whether the server's alternate addresses answered
// direct requests, so they exist and reach this host.
func altAnswered(o *Observations) bool {
	return o.replied(TestMappingAltIP) != nil || o.replied(TestMappingAltIPPort) != nil
}

// portPreservation compares local and mapped ports: the verdict's own
// pair first, then, while those agree, every other answered test's.
func portPreservation(o *Observations, public, local netip.AddrPort) (tri.Bool, string) {
	if !local.IsValid() || local.Port() == 0 || !public.IsValid() {
		return tri.Unknown, ""
	}
	from, to := local.Port(), public.Port()
	for _, t := range o.Tests {
		if from != to {
			break
		}
		if t.Replied && t.ErrorCode == 0 && t.Public().IsValid() && t.Local.Port() != 0 {
			from, to = t.Local.Port(), t.Public().Port()
		}
	}
	if from == to {
		return tri.Yes, fmt.Sprintf("port preservation: yes, local ports kept (e.g. %d)", from)
	}
	return tri.No, fmt.Sprintf("port preservation: no, local port %d became %d", from, to)
}

func hairpinning(o *Observations, nat tri.Bool) (tri.Bool, string) {
	t := o.Test(TestHairpin)
	if t == nil || nat == tri.No {
		return tri.Unknown, "" // hairpinning is a NAT's property: without NAT it does not apply
	}
	if t.Replied {
		return tri.Yes, fmt.Sprintf("hairpinning: yes, a datagram sent to public mapping %s reached the local socket (via %s)", addr(t.To), addr(t.From))
	}
	if t.Err != nil {
		return tri.Unknown, "hairpinning: not tested, " + t.Err.Error()
	}
	return tri.No, fmt.Sprintf("hairpinning: no, nothing sent to public mapping %s came back (%d transmissions)", addr(t.To), t.Attempts)
}

// alg compares MAPPED-ADDRESS with XOR-MAPPED-ADDRESS in one reply: an ALG
// rewrites the plain one. Only possible when a server sends both.
func alg(o *Observations) (tri.Bool, string) {
	for _, t := range o.Tests {
		if !t.Replied || !t.Mapped.IsValid() || !t.XORMapped.IsValid() {
			continue
		}
		if Unmap(t.Mapped) != Unmap(t.XORMapped) {
			return tri.Yes, fmt.Sprintf("ALG: yes, MAPPED-ADDRESS %s differs from XOR-MAPPED-ADDRESS %s in the reply from %s", addr(t.Mapped), addr(t.XORMapped), addr(t.From))
		}
	}
	for _, t := range o.Tests {
		if t.Replied && t.Mapped.IsValid() && t.XORMapped.IsValid() {
			return tri.No, "ALG: no, MAPPED-ADDRESS and XOR-MAPPED-ADDRESS agree"
		}
	}
	return tri.Unknown, ""
}

// cgnat looks for a carrier or second NAT: the host itself in carrier
// space (not on a tunnel interface), or a router before the public side of
// the path with a shared (RFC 6598) or private address.
func cgnat(o *Observations, nat tri.Bool) (tri.Bool, string) {
	if nat == tri.No {
		return tri.No, ""
	}
	if a := o.RouteSource.Unmap(); a.IsValid() && IsShared(a) && !onTunnel(o, a) {
		return tri.Yes, fmt.Sprintf("carrier NAT: yes, this host's own address %s is in 100.64.0.0/10 (RFC 6598)", a)
	}
	if !o.HopsTested || len(o.Hops) == 0 {
		return tri.Unknown, ""
	}
	hops := slices.Clone(o.Hops)
	slices.SortFunc(hops, func(a, b Hop) int { return a.TTL - b.TTL })
	var path []string
	for _, h := range hops {
		a := h.From.Unmap()
		path = append(path, fmt.Sprintf("%d:%s", h.TTL, a))
		if isPublic(a) {
			break
		}
		// Hop 1 is the host's own gateway: private there is the home NAT.
		if IsShared(a) || (h.TTL > 1 && a.IsPrivate()) {
			return tri.Yes, fmt.Sprintf("carrier NAT: yes, router %s at hop %d is in %s before the public side (path %s)", a, h.TTL, rangeName(a), strings.Join(path, " "))
		}
	}
	if !sawPublicSide(o, hops) {
		return tri.Unknown, ""
	}
	return tri.No, fmt.Sprintf("carrier NAT: no, no shared or private router after the gateway (path %s)", strings.Join(path, " "))
}

// sawPublicSide tells whether the TTL probe saw the path leave private
// space, so that "no carrier NAT" rests on evidence.
func sawPublicSide(o *Observations, hops []Hop) bool {
	if o.ReachedTTL > 0 {
		return true
	}
	for _, h := range hops {
		if isPublic(h.From.Unmap()) {
			return true
		}
	}
	return false
}

func onTunnel(o *Observations, a netip.Addr) bool {
	for _, h := range o.HostAddrs {
		if h.Addr.Unmap() == a && h.Tunnel {
			return true
		}
	}
	return false
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// IsShared reports whether a is in the RFC 6598 shared address space
// 100.64.0.0/10 (100.64.0.0 to 100.127.255.255) used by carrier NATs.
func IsShared(a netip.Addr) bool { return sharedSpace.Contains(a.Unmap()) }

func isPublic(a netip.Addr) bool {
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !IsShared(a)
}

func rangeName(a netip.Addr) string {
	if IsShared(a) {
		return "100.64.0.0/10 (carrier-grade NAT, RFC 6598)"
	}
	return "a private range (RFC 1918)"
}

// classicType names the combination in RFC 3489 vocabulary.
func classicType(nat tri.Bool, m Mapping, f Filtering, variesByDestIP tri.Bool) NATType {
	switch nat {
	case tri.Unknown:
		return TypeUnknown
	case tri.No:
		switch f {
		case EndpointIndependent:
			return TypeOpenInternet
		case AddressDependent, AddressAndPortDependent:
			return TypeSymmetricFirewall
		}
		return TypeUnknown
	}
	if variesByDestIP == tri.Yes {
		return TypeSymmetric
	}
	switch m {
	case AddressDependent, AddressAndPortDependent:
		return TypeSymmetric
	case EndpointIndependent:
		switch f {
		case EndpointIndependent:
			return TypeFullCone
		case AddressDependent:
			return TypeRestrictedCone
		case AddressAndPortDependent:
			return TypePortRestrictedCone
		}
	}
	return TypeUnknown
}

// unknownOutlook is the outlook of a type that could not be told.
const unknownOutlook = "Unknown: plan for a relay (TURN) as a fallback."

// outlook says in one line what the type means for peer-to-peer (ICE)
// connections between two hosts.
func outlook(t NATType) string {
	switch t {
	case TypeOpenInternet:
		return "Direct peer-to-peer connections work with peers behind any NAT type."
	case TypeFullCone:
		return "Direct peer-to-peer connections work with peers behind any NAT type, symmetric ones included."
	case TypeRestrictedCone:
		return "Direct peer-to-peer connections work with cone NATs and, through ICE hole punching, with symmetric NATs."
	case TypePortRestrictedCone, TypeSymmetricFirewall:
		return "Direct peer-to-peer connections work with open, full-cone and restricted-cone peers and other port-restricted ones; peers behind a symmetric NAT need a relay (TURN)."
	case TypeSymmetric:
		return "Direct peer-to-peer connections work only with open, full-cone or restricted-cone peers; port-restricted and symmetric peers need a relay (TURN)."
	case TypeUDPBlocked:
		return "No UDP: peer-to-peer media needs a relay reached over TCP or TLS (TURN over TCP/443)."
	}
	return unknownOutlook
}

// Unmap shows IPv4-mapped IPv6 addresses as IPv4.
func Unmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func addr(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "(none)"
	}
	return Unmap(ap).String()
}
