package nat

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Behaviour values for Verdict.Mapping and Verdict.Filtering (RFC 4787).
const (
	EndpointIndependent     = "endpoint-independent"
	AddressDependent        = "address-dependent"
	AddressAndPortDependent = "address-and-port-dependent"
	Unknown                 = "unknown"
)

// NAT types for Verdict.Type, in RFC 3489 vocabulary plus the cases that
// vocabulary has no name for.
const (
	TypeOpenInternet       = "open-internet"
	TypeFullCone           = "full-cone"
	TypeRestrictedCone     = "restricted-cone"
	TypePortRestrictedCone = "port-restricted-cone"
	TypeSymmetric          = "symmetric"
	TypeSymmetricFirewall  = "symmetric-udp-firewall"
	TypeUDPBlocked         = "udp-blocked"
	TypeUnknown            = "unknown"
)

// Types lists every value Verdict.Type can take, for flag validation.
var Types = []string{TypeOpenInternet, TypeFullCone, TypeRestrictedCone, TypePortRestrictedCone,
	TypeSymmetric, TypeSymmetricFirewall, TypeUDPBlocked, TypeUnknown}

// Names of the tests a behaviour run makes. Each is one entry in
// Observations.Tests.
const (
	TestBinding          = "binding"                  // test I: primary server, from the mapping socket
	TestServer           = "binding-other-server"     // another server, from the mapping socket
	TestMappingAltIP     = "mapping-alt-ip"           // test II: alternate IP, primary port, mapping socket
	TestMappingAltIPPort = "mapping-alt-ip-port"      // test III: OTHER-ADDRESS, mapping socket
	TestFilterIPPort     = "filtering-change-ip-port" // fresh socket: CHANGE-REQUEST IP+port to primary
	TestFilterPort       = "filtering-change-port"    // fresh socket: CHANGE-REQUEST port to primary
	TestFilterVerify     = "filtering-verify"         // fresh socket: opens OTHER-ADDRESS, then CHANGE IP+port
	TestHairpin          = "hairpin"                  // a second socket sends to the first one's mapping
	TestTCP              = "binding-tcp"              // STUN over TCP, run when UDP got no answer
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
	Name     string
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
	Err                             string // why there is no reply, if known
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
func (o *Observations) Test(name string) *TestResult {
	for i := range o.Tests {
		if o.Tests[i].Name == name {
			return &o.Tests[i]
		}
	}
	return nil
}

func (o *Observations) replied(name string) *TestResult {
	if t := o.Test(name); t != nil && t.Replied && t.ErrorCode == 0 {
		return t
	}
	return nil
}

// Verdict is the classification of a run. Tri-state findings are *bool:
// nil means "not tested" or "could not be told", never false.
type Verdict struct {
	Type      string
	NAT       *bool
	Mapping   string
	Filtering string
	Public    netip.AddrPort // mapped address seen by the primary server
	Local     netip.AddrPort // the mapping socket's address (route source if bound to the wildcard)

	PortPreservation *bool
	Hairpinning      *bool
	CGNAT            *bool
	ALG              *bool
	// MappingVariesByDestIP is set when two servers on different IPs saw
	// different mappings, whether or not mapping could be named further.
	MappingVariesByDestIP *bool
	RFC5780               string // server support: "verified", "advertised", "invalid", "absent"

	Evidence []string // one line per finding, saying what it rests on
	Outlook  string   // what this means for peer-to-peer connections
}

// Classify turns observations into a verdict. It never guesses: a finding
// whose evidence is missing or contradicted is unknown (nil).
func Classify(o Observations) Verdict {
	v := Verdict{Type: TypeUnknown, Mapping: Unknown, Filtering: Unknown, RFC5780: "absent"}
	bind := firstReply(&o)
	if bind == nil {
		classifyNoUDP(&o, &v)
		v.Outlook = outlook(v.Type)
		return v
	}
	v.Public = Unmap(bind.Public())
	v.Local = localOf(&o, bind.Local)
	v.NAT = isNAT(&o, &v)
	v.Mapping = mapping(&o, &v)
	v.Filtering = filtering(&o, &v)
	v.PortPreservation = portPreservation(&o, &v)
	v.Hairpinning = hairpinning(&o, &v)
	v.ALG = alg(&o, &v)
	v.CGNAT = cgnat(&o, &v)
	v.Type = classicType(&v)
	v.Outlook = outlook(v.Type)
	return v
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

// classifyNoUDP handles a run where no UDP binding was answered: STUN over
// TCP tells "UDP blocked" apart from "offline".
func classifyNoUDP(o *Observations, v *Verdict) {
	tcp := o.replied(TestTCP)
	if tcp == nil || !tcp.Public().IsValid() {
		v.Evidence = append(v.Evidence, "no STUN server answered over UDP or TCP")
		return
	}
	v.Type = TypeUDPBlocked
	v.Public = Unmap(tcp.Public())
	v.Local = localOf(o, tcp.Local)
	v.Evidence = append(v.Evidence, fmt.Sprintf("UDP: no answer from any server; TCP: %s answered, saw %s", addr(tcp.To), addr(v.Public)))
	v.NAT = isNAT(o, v)
	v.CGNAT = cgnat(o, v)
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
func isNAT(o *Observations, v *Verdict) *bool {
	pub := v.Public.Addr()
	own := false
	var cands []netip.Addr
	if o.RouteSource.IsValid() {
		cands = append(cands, o.RouteSource.Unmap())
	}
	for _, h := range o.HostAddrs {
		cands = append(cands, h.Addr.Unmap())
	}
	if len(cands) == 0 {
		v.Evidence = append(v.Evidence, "NAT: unknown, the host's own addresses could not be read")
		return nil
	}
	for _, a := range cands {
		if a.IsValid() && !a.IsUnspecified() && a == pub {
			own = true
		}
	}
	switch {
	case !own:
		v.Evidence = append(v.Evidence, fmt.Sprintf("NAT: yes, public address %s is not one of this host's addresses (local %s)", addr(v.Public), addr(v.Local)))
		return ptr(true)
	case v.Local.Port() != 0 && v.Public.Port() != v.Local.Port():
		v.Evidence = append(v.Evidence, fmt.Sprintf("NAT: yes, public address is this host's own but the port is translated (%d -> %d)", v.Local.Port(), v.Public.Port()))
		return ptr(true)
	default:
		v.Evidence = append(v.Evidence, fmt.Sprintf("NAT: no, public address %s is this host's own", addr(v.Public)))
		return ptr(false)
	}
}

// mapping decides the mapping behaviour from RFC 5780 tests I-III, or
// failing those, from the mappings different servers saw from one socket.
func mapping(o *Observations, v *Verdict) string {
	if v.NAT != nil && !*v.NAT {
		v.Evidence = append(v.Evidence, "mapping: endpoint-independent, no address translation")
		return EndpointIndependent
	}
	t1, t2, t3 := o.replied(TestBinding), o.replied(TestMappingAltIP), o.replied(TestMappingAltIPPort)
	if t1 != nil && t2 != nil {
		m1, m2 := Unmap(t1.Public()), Unmap(t2.Public())
		if m1 == m2 {
			v.MappingVariesByDestIP = ptr(false)
			v.Evidence = append(v.Evidence, fmt.Sprintf("mapping: endpoint-independent, %s and %s both saw %s", addr(t1.To), addr(t2.To), addr(m1)))
			return EndpointIndependent
		}
		v.MappingVariesByDestIP = ptr(true)
		if t3 == nil {
			v.Evidence = append(v.Evidence, fmt.Sprintf("mapping: varies by destination IP (%s saw %s, %s saw %s); no answer from %s to tell port dependence", addr(t1.To), addr(m1), addr(t2.To), addr(m2), TestMappingAltIPPort))
			return Unknown
		}
		m3 := Unmap(t3.Public())
		if m2 == m3 {
			v.Evidence = append(v.Evidence, fmt.Sprintf("mapping: address-dependent, %s saw %s, %s and %s saw %s", addr(t1.To), addr(m1), addr(t2.To), addr(t3.To), addr(m2)))
			return AddressDependent
		}
		v.Evidence = append(v.Evidence, fmt.Sprintf("mapping: address-and-port-dependent, %s saw %s, %s saw %s, %s saw %s", addr(t1.To), addr(m1), addr(t2.To), addr(m2), addr(t3.To), addr(m3)))
		return AddressAndPortDependent
	}
	return plainMapping(o, v)
}

// plainMapping compares the mappings that plain servers saw from the one
// mapping socket. Servers on two IPs tell whether mapping varies by
// address; two servers on one IP with different ports tell port dependence.
func plainMapping(o *Observations, v *Verdict) string {
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
		v.Evidence = append(v.Evidence, "mapping: unknown, no server with RFC 5780 support and no two servers on different IPs answered")
		return Unknown
	}
	a, b := diffIP[0], diffIP[1]
	if Unmap(a.Public()) == Unmap(b.Public()) {
		v.MappingVariesByDestIP = ptr(false)
		v.Evidence = append(v.Evidence, fmt.Sprintf("mapping: endpoint-independent, %s and %s both saw %s", addr(a.To), addr(b.To), addr(a.Public())))
		return EndpointIndependent
	}
	v.MappingVariesByDestIP = ptr(true)
	diff := fmt.Sprintf("%s saw %s, %s saw %s", addr(a.To), addr(a.Public()), addr(b.To), addr(b.Public()))
	if sameIP[0] == nil {
		v.Evidence = append(v.Evidence, "mapping: varies by destination ("+diff+"); no second port on one server to tell address from address-and-port dependence")
		return Unknown
	}
	if Unmap(sameIP[0].Public()) == Unmap(sameIP[1].Public()) {
		v.Evidence = append(v.Evidence, "mapping: address-dependent ("+diff+"; same mapping towards two ports of "+sameIP[0].To.Addr().Unmap().String()+")")
		return AddressDependent
	}
	v.Evidence = append(v.Evidence, "mapping: address-and-port-dependent ("+diff+"; different mappings towards two ports of "+sameIP[0].To.Addr().Unmap().String()+")")
	return AddressAndPortDependent
}

// filtering decides the filtering behaviour from CHANGE-REQUEST tests, and
// only when the server has proven or credibly advertised RFC 5780 support.
func filtering(o *Observations, v *Verdict) string {
	t1 := o.replied(TestBinding)
	if t1 == nil || !t1.OtherAddress.IsValid() {
		v.Evidence = append(v.Evidence, "filtering: unknown, no server advertised RFC 5780 support (OTHER-ADDRESS)")
		return Unknown
	}
	prim, other := Unmap(t1.To), Unmap(t1.OtherAddress)
	if other.Addr() == prim.Addr() || other.Port() == prim.Port() {
		v.RFC5780 = "invalid"
		v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: unknown, server %s advertises OTHER-ADDRESS %s without a second IP and port (RFC 5780 section 7.4)", addr(prim), addr(other)))
		return Unknown
	}
	v.RFC5780 = "advertised"
	ipPort, port, verify := o.Test(TestFilterIPPort), o.Test(TestFilterPort), o.Test(TestFilterVerify)
	// A reply from anywhere but the changed address means the server
	// ignored the CHANGE-REQUEST: its answers say nothing about the filter.
	for _, t := range []*TestResult{ipPort, port, verify} {
		if t == nil || !t.Replied {
			continue
		}
		if t.ErrorCode != 0 || Unmap(t.From) != Unmap(t.Expect) {
			v.RFC5780 = "invalid"
			what := fmt.Sprintf("came from %s instead of %s", addr(t.From), addr(t.Expect))
			if t.ErrorCode != 0 {
				what = fmt.Sprintf("was error %d", t.ErrorCode)
			}
			v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: unknown, server %s does not honour CHANGE-REQUEST (the reply to %s %s)", addr(prim), t.Name, what))
			return Unknown
		}
		v.RFC5780 = "verified"
	}
	switch {
	case ipPort == nil || port == nil:
		v.Evidence = append(v.Evidence, "filtering: unknown, the CHANGE-REQUEST tests did not run")
		return Unknown
	case ipPort.Replied:
		v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: endpoint-independent, a reply from %s (IP and port never contacted) came through", addr(ipPort.From)))
		return EndpointIndependent
	}
	// From here the IP+port test got silence, after its retransmissions.
	// Silence only counts if the server is known to honour CHANGE-REQUEST.
	proven := verify != nil && verify.Replied
	if !proven && v.Mapping == EndpointIndependent && (port == nil || !port.Replied) {
		// With endpoint-independent mapping the verify test (which opened
		// the filter for OTHER-ADDRESS first) must get through; that it did
		// not means the server drops CHANGE-REQUESTs.
		v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: unknown, %s did not answer a CHANGE-REQUEST even after the filter was opened for %s", addr(prim), addr(other)))
		return Unknown
	}
	if !proven && !port.Replied && !altAnswered(o) {
		v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: unknown, the alternate address %s never answered", addr(other)))
		return Unknown
	}
	basis := fmt.Sprintf("after %d transmissions", ipPort.Attempts)
	if !proven {
		basis += "; the server's support is advertised, not provable through a NAT whose mapping varies"
	}
	if port.Replied {
		v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: address-dependent, a reply from %s (known IP, new port) came through, none from %s (%s)", addr(port.From), addr(ipPort.Expect), basis))
		return AddressDependent
	}
	v.Evidence = append(v.Evidence, fmt.Sprintf("filtering: address-and-port-dependent, no reply from %s nor %s came through (%s)", addr(ipPort.Expect), addr(port.Expect), basis))
	return AddressAndPortDependent
}

// altAnswered tells whether the server's alternate addresses answered
// direct requests, so they exist and reach this host.
func altAnswered(o *Observations) bool {
	return o.replied(TestMappingAltIP) != nil || o.replied(TestMappingAltIPPort) != nil
}

func portPreservation(o *Observations, v *Verdict) *bool {
	if !v.Local.IsValid() || v.Local.Port() == 0 || !v.Public.IsValid() {
		return nil
	}
	from, to := v.Local.Port(), v.Public.Port()
	for _, t := range o.Tests {
		if from != to {
			break
		}
		if t.Replied && t.ErrorCode == 0 && t.Public().IsValid() && t.Local.Port() != 0 {
			from, to = t.Local.Port(), t.Public().Port()
		}
	}
	if from == to {
		v.Evidence = append(v.Evidence, fmt.Sprintf("port preservation: yes, local ports kept (e.g. %d)", from))
		return ptr(true)
	}
	v.Evidence = append(v.Evidence, fmt.Sprintf("port preservation: no, local port %d became %d", from, to))
	return ptr(false)
}

func hairpinning(o *Observations, v *Verdict) *bool {
	t := o.Test(TestHairpin)
	if t == nil || (v.NAT != nil && !*v.NAT) {
		return nil // hairpinning is a NAT's property: without NAT it does not apply
	}
	if t.Replied {
		v.Evidence = append(v.Evidence, fmt.Sprintf("hairpinning: yes, a datagram sent to public mapping %s reached the local socket (via %s)", addr(t.To), addr(t.From)))
		return ptr(true)
	}
	if t.Err != "" {
		v.Evidence = append(v.Evidence, "hairpinning: not tested, "+t.Err)
		return nil
	}
	v.Evidence = append(v.Evidence, fmt.Sprintf("hairpinning: no, nothing sent to public mapping %s came back (%d transmissions)", addr(t.To), t.Attempts))
	return ptr(false)
}

// alg compares MAPPED-ADDRESS with XOR-MAPPED-ADDRESS in one reply: an ALG
// rewrites the plain one. Only possible when a server sends both.
func alg(o *Observations, v *Verdict) *bool {
	for _, t := range o.Tests {
		if !t.Replied || !t.Mapped.IsValid() || !t.XORMapped.IsValid() {
			continue
		}
		if Unmap(t.Mapped) != Unmap(t.XORMapped) {
			v.Evidence = append(v.Evidence, fmt.Sprintf("ALG: yes, MAPPED-ADDRESS %s differs from XOR-MAPPED-ADDRESS %s in the reply from %s", addr(t.Mapped), addr(t.XORMapped), addr(t.From)))
			return ptr(true)
		}
	}
	for _, t := range o.Tests {
		if t.Replied && t.Mapped.IsValid() && t.XORMapped.IsValid() {
			v.Evidence = append(v.Evidence, "ALG: no, MAPPED-ADDRESS and XOR-MAPPED-ADDRESS agree")
			return ptr(false)
		}
	}
	return nil
}

// cgnat looks for a carrier or second NAT: the host itself in carrier
// space (not on a tunnel interface), or a router before the public side of
// the path with a shared (RFC 6598) or private address.
func cgnat(o *Observations, v *Verdict) *bool {
	if v.NAT != nil && !*v.NAT {
		return ptr(false)
	}
	if a := o.RouteSource.Unmap(); a.IsValid() && IsShared(a) && !onTunnel(o, a) {
		v.Evidence = append(v.Evidence, fmt.Sprintf("carrier NAT: yes, this host's own address %s is in 100.64.0.0/10 (RFC 6598)", a))
		return ptr(true)
	}
	if !o.HopsTested || len(o.Hops) == 0 {
		return nil
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
			v.Evidence = append(v.Evidence, fmt.Sprintf("carrier NAT: yes, router %s at hop %d is in %s before the public side (path %s)", a, h.TTL, rangeName(a), strings.Join(path, " ")))
			return ptr(true)
		}
	}
	if !sawPublicSide(o, hops) {
		return nil
	}
	v.Evidence = append(v.Evidence, fmt.Sprintf("carrier NAT: no, no shared or private router after the gateway (path %s)", strings.Join(path, " ")))
	return ptr(false)
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
func classicType(v *Verdict) string {
	if v.NAT == nil {
		return TypeUnknown
	}
	if !*v.NAT {
		switch v.Filtering {
		case EndpointIndependent:
			return TypeOpenInternet
		case AddressDependent, AddressAndPortDependent:
			return TypeSymmetricFirewall
		}
		return TypeUnknown
	}
	if v.MappingVariesByDestIP != nil && *v.MappingVariesByDestIP {
		return TypeSymmetric
	}
	switch v.Mapping {
	case AddressDependent, AddressAndPortDependent:
		return TypeSymmetric
	case EndpointIndependent:
		switch v.Filtering {
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

// outlook says in one line what the type means for peer-to-peer (ICE)
// connections between two hosts.
func outlook(t string) string {
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
	return "Unknown: plan for a relay (TURN) as a fallback."
}

func ptr[T any](v T) *T { return &v }

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
