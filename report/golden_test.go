package report

// Golden-file tests: every document natcheck prints (JSON for --json, the
// text for a terminal, Markdown for `report --format markdown`) is rendered
// from a fixed input and compared byte for byte with testdata/<name>.
// The golden files are the contract; the fixtures below are the only part
// that should change when the probe, portmap or diagnose types are
// reorganised. After a deliberate change of output, rewrite the files with
//
//	go test ./report -run Golden -update
//
// and review the diff. The values are those of real NAT lab runs (many are
// the ones quoted in docs/ and README.md, which docs_test.go compares with
// these renderings).

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// ---- fixtures --------------------------------------------------------------
//
// Everything below builds the inputs. Keep the values: the golden files and
// the documentation examples depend on them.

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func ip(s string) netip.Addr     { return netip.MustParseAddr(s) }
func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func server(input string) stunclient.Server {
	s, err := stunclient.ParseServer(input)
	if err != nil {
		panic(err)
	}
	return s
}

// fxWhoAmI is the run quoted in docs/json.md: one live server and a dead
// one that was still pending when the answer was settled.
func fxWhoAmI() *probe.WhoAmI {
	return &probe.WhoAmI{
		Family: stunclient.IPv4, Public: ap("203.0.113.2:41620"), Local: ap("192.168.1.2:41620"),
		NAT: true, Agreed: 1, Differ: 0, Elapsed: ms(66.52),
		Servers: []probe.ServerResult{
			{Server: server("203.0.113.10"), Address: ap("203.0.113.10:3478"), Status: probe.StatusAnswered,
				RTT: ms(53.87), Mapped: ap("203.0.113.2:41620")},
			{Server: server("203.0.113.99"), Address: ap("203.0.113.99:3478"), Status: probe.StatusSkipped},
		},
	}
}

// fxWhoAmIAgree is the `whoami -v` run quoted in README.md: two servers
// agree, a dead one is skipped.
func fxWhoAmIAgree() *probe.WhoAmI {
	return &probe.WhoAmI{
		Family: stunclient.IPv4, Public: ap("203.0.113.2:34465"), Local: ap("192.168.1.2:34465"),
		NAT: true, Agreed: 2, Elapsed: ms(105.3),
		Servers: []probe.ServerResult{
			{Server: server("203.0.113.10"), Address: ap("203.0.113.10:3478"), Status: probe.StatusAnswered,
				RTT: ms(52.8), Mapped: ap("203.0.113.2:34465")},
			{Server: server("203.0.113.11:3478"), Address: ap("203.0.113.11:3478"), Status: probe.StatusAnswered,
				RTT: ms(104.9), Mapped: ap("203.0.113.2:34465")},
			{Server: server("203.0.113.99"), Address: ap("203.0.113.99:3478"), Status: probe.StatusSkipped},
		},
	}
}

// fxWhoAmIDisagree has every server status: a lying server, one that never
// answered, a name without an address, an unreachable network, an error
// reply. Some packets were dropped.
func fxWhoAmIDisagree() *probe.WhoAmI {
	return &probe.WhoAmI{
		Family: stunclient.IPv4, Public: ap("203.0.113.2:50110"), Local: ap("192.168.1.2:50110"),
		NAT: true, Agreed: 2, Differ: 1, Ignored: 3, Elapsed: ms(412.25),
		Servers: []probe.ServerResult{
			{Server: server("203.0.113.10"), Address: ap("203.0.113.10:3478"), Status: probe.StatusAnswered,
				RTT: ms(51.2), Mapped: ap("203.0.113.2:50110")},
			{Server: server("stun:stun.example.net"), Address: ap("198.51.100.20:3478"), Status: probe.StatusAnswered,
				RTT: ms(88.4), Mapped: ap("198.51.100.77:50110")},
			{Server: server("203.0.113.11:3479"), Address: ap("203.0.113.11:3479"), Status: probe.StatusAnswered,
				RTT: ms(410.06), Mapped: ap("203.0.113.2:50110")},
			{Server: server("203.0.113.99"), Address: ap("203.0.113.99:3478"), Status: probe.StatusNoAnswer,
				Err: errors.New("context deadline exceeded")},
			{Server: server("stun6.example.net"), Status: probe.StatusUnresolved,
				Err: errors.New("lookup stun6.example.net: no IPv4 address")},
			{Server: server("198.51.100.7"), Address: ap("198.51.100.7:3478"), Status: probe.StatusFailed,
				Err: errors.New("write udp4 0.0.0.0:50110->198.51.100.7:3478: sendto: network is unreachable")},
			{Server: server("203.0.113.12"), Address: ap("203.0.113.12:3478"), Status: probe.StatusBadReply,
				RTT: ms(50.9), Err: errors.New("STUN error 500 Server Error")},
		},
	}
}

// typeObservations is a port-restricted cone behind 192.168.1.2 with an
// RFC 5780 server on 203.0.113.10/.11: the lab's default topology. port is
// the mapping socket's port, which the NAT preserves.
func typeObservations(port uint16) nat.Observations {
	pub := netip.AddrPortFrom(ip("203.0.113.2"), port)
	local := netip.AddrPortFrom(ip("0.0.0.0"), port)
	return nat.Observations{
		RouteSource: ip("192.168.1.2"),
		HostAddrs: []nat.HostAddr{{Addr: ip("127.0.0.1"), Iface: "lo"}, {Addr: ip("192.168.1.2"), Iface: "eth0"},
			{Addr: ip("10.8.0.2"), Iface: "wg0", Tunnel: true}},
		HopsTested: true,
		Hops:       []nat.Hop{{TTL: 1, From: ip("192.168.1.1")}, {TTL: 2, From: ip("203.0.113.1")}},
		ReachedTTL: 3,
		Tests: []nat.TestResult{
			{Name: nat.TestBinding, Local: local, To: ap("203.0.113.10:3478"), Replied: true, From: ap("203.0.113.10:3478"),
				RTT: ms(52.31), Attempts: 1, XORMapped: pub, Mapped: pub, OtherAddress: ap("203.0.113.11:3479")},
			{Name: nat.TestMappingAltIP, Local: local, To: ap("203.0.113.11:3478"), Replied: true, From: ap("203.0.113.11:3478"),
				RTT: ms(51.84), Attempts: 1, XORMapped: pub, Mapped: pub, OtherAddress: ap("203.0.113.10:3479")},
			{Name: nat.TestMappingAltIPPort, Local: local, To: ap("203.0.113.11:3479"), Replied: true, From: ap("203.0.113.11:3479"),
				RTT: ms(52.02), Attempts: 1, XORMapped: pub, Mapped: pub, OtherAddress: ap("203.0.113.10:3478")},
			// Each destination of the mapping socket is asked twice.
			{Name: nat.TestRepeat, Local: local, To: ap("203.0.113.10:3478"), Replied: true, From: ap("203.0.113.10:3478"),
				RTT: ms(52.4), Attempts: 1, XORMapped: pub, Mapped: pub, OtherAddress: ap("203.0.113.11:3479")},
			// The CHANGE-REQUEST tests run from two sockets at once, six
			// copies each: 12 transmissions met silence.
			{Name: nat.TestFilterIPPort, Local: ap("0.0.0.0:62714"), To: ap("203.0.113.10:3478"), Change: nat.ChangeIP | nat.ChangePort,
				Expect: ap("203.0.113.11:3479"), Attempts: 12, Witnessed: 12, Listened: ms(226)},
			{Name: nat.TestFilterPort, Local: ap("0.0.0.0:63390"), To: ap("203.0.113.10:3478"), Change: nat.ChangePort,
				Expect: ap("203.0.113.10:3479"), Attempts: 12, Witnessed: 12, Listened: ms(226)},
			{Name: nat.TestFilterVerify, Local: ap("0.0.0.0:41502"), To: ap("203.0.113.10:3478"), Change: nat.ChangeIP | nat.ChangePort,
				Expect: ap("203.0.113.11:3479"), Replied: true, From: ap("203.0.113.11:3479"), RTT: ms(52.93), Attempts: 1,
				XORMapped: ap("203.0.113.2:41502"), Mapped: ap("203.0.113.2:41502"), OtherAddress: ap("203.0.113.10:3478")},
			{Name: nat.TestHairpin, Local: ap("0.0.0.0:52016"), To: pub, Attempts: 6},
		},
	}
}

// fxType is the run quoted in docs/type.md. The verdict comes from
// nat.Classify, as in a real run, so that the evidence lines are the
// classifier's own.
func fxType() *probe.TypeResult { return typeResult(typeObservations(47281), ms(270.4)) }

func typeResult(o nat.Observations, d time.Duration) *probe.TypeResult {
	return &probe.TypeResult{Observations: o, Verdict: nat.Classify(o),
		Servers: []netip.AddrPort{ap("203.0.113.10:3478")}, Primary: ap("203.0.113.10:3478"), Duration: d}
}

// fxTypeRuns is `type --runs 5 --bind 192.168.1.2:47281`: four runs
// found fxType's verdict, one found symmetric; the result is the first
// agreeing run, with the time of all five and the sockets it opened.
func fxTypeRuns() (*probe.TypeResult, *diagnose.Runs) {
	res := *fxType()
	res.Duration = ms(2412.9)
	res.Sockets = []probe.Socket{
		{Use: "mapping", Local: ap("192.168.1.2:47281")}, {Use: "filtering", Local: ap("192.168.1.2:61204")},
		{Use: "filtering", Local: ap("192.168.1.2:63377")}, {Use: "verify", Local: ap("192.168.1.2:40712")},
		{Use: "hairpin", Local: ap("192.168.1.2:51006")}, {Use: "hairpin", Local: ap("192.168.1.2:51007")},
		{Use: "ttl", Local: ap("192.168.1.2:51008")},
	}
	runs := []diagnose.TypeRun{{Result: &res, Elapsed: ms(270.4)}}
	for _, d := range []float64{281.2, 266.9, 275.0} {
		r := *fxType()
		r.Duration = ms(d)
		runs = append(runs, diagnose.TypeRun{Result: &r, Elapsed: ms(d)})
	}
	sym := fxTypeSymmetric()
	runs = append(runs[:2], append([]diagnose.TypeRun{{Result: sym, Elapsed: ms(1043.7)}}, runs[2:]...)...)
	v, n, _ := diagnose.Majority(runs)
	return &res, &diagnose.Runs{Runs: runs, Majority: v, Agreeing: n, Differed: []string{"type", "mapping", "filtering"}}
}

// fxTypeSymmetric uses two plain servers: mapping varies by destination,
// filtering unknown, hairpinning not tested, carrier-grade NAT undecided
// (the TTL probe did not run), ALG unknown (no server sent both mapped
// addresses). A third server never answered.
func fxTypeSymmetric() *probe.TypeResult {
	o := nat.Observations{
		RouteSource: ip("192.168.1.2"),
		HostAddrs:   []nat.HostAddr{{Addr: ip("192.168.1.2"), Iface: "eth0"}},
		Tests: []nat.TestResult{
			{Name: nat.TestBinding, Local: ap("0.0.0.0:40100"), To: ap("198.51.100.20:3478"), Replied: true,
				From: ap("198.51.100.20:3478"), RTT: ms(24.6), Attempts: 1, XORMapped: ap("203.0.113.2:61022")},
			{Name: nat.TestServer, Local: ap("0.0.0.0:40100"), To: ap("198.51.100.30:3478"), Replied: true,
				From: ap("198.51.100.30:3478"), RTT: ms(31.15), Attempts: 2, XORMapped: ap("203.0.113.2:61023")},
			{Name: nat.TestServer, Local: ap("0.0.0.0:40100"), To: ap("203.0.113.99:3478"), Attempts: 4},
			{Name: nat.TestHairpin, Local: ap("0.0.0.0:40101"), To: ap("203.0.113.2:61022"),
				Err: errors.New("listen udp4 0.0.0.0:0: socket: too many open files")},
		},
	}
	return &probe.TypeResult{Observations: o, Verdict: nat.Classify(o),
		Servers: []netip.AddrPort{ap("198.51.100.20:3478"), ap("198.51.100.30:3478"), ap("203.0.113.99:3478")},
		Primary: ap("198.51.100.20:3478"), Duration: ms(1043.7)}
}

// fxTypeUDPBlocked: no UDP answer at all, STUN over TCP answered.
func fxTypeUDPBlocked() *probe.TypeResult {
	o := nat.Observations{
		RouteSource: ip("192.168.1.2"),
		HostAddrs:   []nat.HostAddr{{Addr: ip("192.168.1.2"), Iface: "eth0"}},
		Tests: []nat.TestResult{
			{Name: nat.TestBinding, Local: ap("0.0.0.0:45000"), To: ap("203.0.113.10:3478"), Attempts: 8},
			{Name: nat.TestTCP, Local: ap("192.168.1.2:45001"), To: ap("203.0.113.10:3478"), Replied: true,
				From: ap("203.0.113.10:3478"), RTT: ms(53.1), Attempts: 1, XORMapped: ap("203.0.113.2:45001")},
		},
	}
	return &probe.TypeResult{Observations: o, Verdict: nat.Classify(o),
		Servers: []netip.AddrPort{ap("203.0.113.10:3478")}, Primary: ap("203.0.113.10:3478"), Duration: ms(1302.9)}
}

// fxPortmap is the run quoted in docs/portmap.md: miniupnpd with UPnP
// only; NAT-PMP refused; PCP not in the report.
func fxPortmap() PortmapInput {
	return PortmapInput{
		Report: &portmap.Report{
			Gateway: portmap.Gateway{Addr: ip("192.168.1.1"), Local: ip("192.168.1.2"), Iface: "eth0"},
			Results: []portmap.Result{
				{Protocol: portmap.UPnP, Supported: tri.Yes, Server: "Debian/6.18.44 UPnP/1.1 MiniUPnPd/2.3.1",
					ExternalIP: ip("203.0.113.2"), MappingAdded: tri.Yes, MappingDeleted: tri.Yes,
					InternalPort: 56921, ExternalPort: 56921, Lifetime: 60 * time.Second,
					Timings: portmap.Timings{Discover: ms(82.1), ExternalIP: ms(30.2), Add: ms(30.4), Delete: ms(25), Total: ms(248.3)}},
				{Protocol: portmap.NATPMP, Supported: tri.No, Err: errors.New("refused (ICMP port unreachable): no server on the gateway"),
					Timings: portmap.Timings{Discover: ms(0.6), Total: ms(0.7)}},
			},
			Elapsed: ms(248.9),
		},
		STUNMapped: ip("203.0.113.2"),
		Elapsed:    ms(253),
	}
}

// fxPortmapDoubleNAT is a home router behind a carrier NAT: its WAN
// address is shared space, one protocol could not delete its mapping, PCP
// answered with an error, and STUN failed.
func fxPortmapDoubleNAT() PortmapInput {
	return PortmapInput{
		Report: &portmap.Report{
			Gateway: portmap.Gateway{Addr: ip("192.168.1.1"), Local: ip("192.168.1.2"), Iface: "eth0"},
			Results: []portmap.Result{
				{Protocol: portmap.UPnP, Supported: tri.Yes, Server: "Debian/6.18.44 UPnP/1.1 MiniUPnPd/2.3.1",
					MappingAdded: tri.Yes, MappingDeleted: tri.No, InternalPort: 40400, ExternalPort: 40400,
					Err:     errors.New("GetExternalIPAddress: empty address; DeletePortMapping: no answer in 1s (3 transmissions)"),
					Timings: portmap.Timings{Discover: ms(41.7), ExternalIP: ms(12.3), Add: ms(14.1), Total: ms(1081.2)}},
				{Protocol: portmap.NATPMP, Supported: tri.Yes, Server: "epoch 1204", MappingAdded: tri.No,
					Err:     errors.New("external address: result 3 (network failure)"),
					Timings: portmap.Timings{Discover: ms(1.9), Total: ms(2.3)}},
				{Protocol: portmap.PCP, Supported: tri.Yes, Server: "version 2, epoch 1204", ExternalIP: ip("100.64.0.2"),
					MappingAdded: tri.No, Err: errors.New("MAP: result 8 (NO_RESOURCES)"),
					Timings: portmap.Timings{Discover: ms(1.2), Add: ms(1.4), Total: ms(2.8)}},
			},
			Elapsed: ms(1081.5),
		},
		STUNErr: errors.New("no STUN server answered (203.0.113.10: no-answer)"),
		Elapsed: ms(1085.4),
	}
}

// fxIPv6Translated is the NAT66 run quoted in docs/ipv6.md.
func fxIPv6Translated() *probe.IPv6Check {
	return &probe.IPv6Check{
		ULA: []netip.Addr{ip("fd00:1::2")}, STUN: probe.IPv6Works, Path: probe.PathTranslated,
		Public: ap("[2001:db8:ff::2]:51078"), Local: ap("[fd00:1::2]:51078"), PortPreserved: tri.Yes,
		Elapsed: ms(6.7),
		WhoAmI: &probe.WhoAmI{Family: stunclient.IPv6, Public: ap("[2001:db8:ff::2]:51078"), Local: ap("[fd00:1::2]:51078"),
			NAT: true, Agreed: 1, Elapsed: ms(6.7),
			Servers: []probe.ServerResult{{Server: server("[2001:db8:ff::10]"), Address: ap("[2001:db8:ff::10]:3478"),
				Status: probe.StatusAnswered, RTT: ms(1.3), Mapped: ap("[2001:db8:ff::2]:51078")}}},
	}
}

// fxIPv6Routed is the routed run quoted in docs/ipv6.md.
func fxIPv6Routed() *probe.IPv6Check {
	return &probe.IPv6Check{
		Global: []netip.Addr{ip("2001:db8:1::2")}, ULA: []netip.Addr{}, STUN: probe.IPv6Works, Path: probe.PathRouted,
		Public: ap("[2001:db8:1::2]:43311"), Local: ap("[2001:db8:1::2]:43311"), Elapsed: ms(5.93),
		WhoAmI: &probe.WhoAmI{Family: stunclient.IPv6, Public: ap("[2001:db8:1::2]:43311"), Local: ap("[2001:db8:1::2]:43311"),
			Agreed: 1, Elapsed: ms(5.93),
			Servers: []probe.ServerResult{{Server: server("stun.example.net"), Address: ap("[2001:db8:ff::10]:3478"),
				Status: probe.StatusAnswered, RTT: ms(1.41), Mapped: ap("[2001:db8:1::2]:43311")}}},
	}
}

// fxIPv6NoRoute: a host without IPv6, as the lab without AddIPv6.
func fxIPv6NoRoute() *probe.IPv6Check {
	return &probe.IPv6Check{
		STUN: probe.IPv6NoRoute, Path: probe.PathUnknown, Elapsed: ms(0.42),
		Err: errors.New("no STUN server answered (2001:db8:ff::10: failed; write udp6 [::]:40000->[2001:db8:ff::10]:3478: sendto: network is unreachable)"),
		WhoAmI: &probe.WhoAmI{Family: stunclient.IPv6, Servers: []probe.ServerResult{
			{Server: server("2001:db8:ff::10"), Address: ap("[2001:db8:ff::10]:3478"), Status: probe.StatusFailed,
				Err: errors.New("write udp6 [::]:40000->[2001:db8:ff::10]:3478: sendto: network is unreachable")},
			{Server: server("203.0.113.10"), Status: probe.StatusUnresolved, Err: errors.New("203.0.113.10 is not an IPv6 address")},
		}},
	}
}

// fxTCP is the run quoted in docs/tcp.md.
func fxTCP() *probe.TCPMapping {
	return &probe.TCPMapping{
		Family: stunclient.IPv4, Mapping: nat.EndpointIndependent, EndpointIndependent: tri.Yes,
		Local: ap("192.168.1.2:42085"), Elapsed: ms(6.2),
		Servers: []stunclient.TCPBindingResult{{Name: nat.TCPProbe, To: ap("203.0.113.10:3478"), Local: ap("192.168.1.2:46112"),
			Mapped: ap("203.0.113.2:46112"), Other: ap("203.0.113.11:3479"), RTT: ms(0.9)}},
		Tests: []stunclient.TCPBindingResult{
			{Name: nat.TCPPrimary, To: ap("203.0.113.10:3478"), Local: ap("192.168.1.2:42085"), Mapped: ap("203.0.113.2:42085"),
				Other: ap("203.0.113.11:3479"), RTT: ms(0.8)},
			{Name: nat.TCPAltIP, To: ap("203.0.113.11:3478"), Local: ap("192.168.1.2:42085"), Mapped: ap("203.0.113.2:42085"), RTT: ms(0.7)},
			{Name: nat.TCPAltIPPort, To: ap("203.0.113.11:3479"), Local: ap("192.168.1.2:42085"), Mapped: ap("203.0.113.2:42085"), RTT: ms(0.7)},
		},
	}
}

// fxTCPOtherServer: plain servers only, the mapping differed towards
// another server (so not endpoint-independent, finer kind unknown); a
// dead server timed out.
func fxTCPOtherServer() *probe.TCPMapping {
	return &probe.TCPMapping{
		Family: stunclient.IPv4, Mapping: nat.MappingUnknown, EndpointIndependent: tri.No,
		Local: ap("192.168.1.2:39001"), Elapsed: ms(1312.5),
		Reason: "198.51.100.30:3478 saw another mapping than 198.51.100.20:3478; no second port of one server to tell address from address-and-port dependence",
		Servers: []stunclient.TCPBindingResult{
			{Name: nat.TCPProbe, To: ap("198.51.100.20:3478"), Local: ap("192.168.1.2:51200"), Mapped: ap("203.0.113.2:20117"), RTT: ms(24.4)},
			{Name: nat.TCPProbe, To: ap("198.51.100.30:3478"), Local: ap("192.168.1.2:51201"), Mapped: ap("203.0.113.2:20118"), RTT: ms(31.6)},
			{Name: nat.TCPProbe, To: ap("203.0.113.99:3478"), Local: ap("192.168.1.2:51202"),
				Err: errors.New("no answer within the grace period after another server's")},
		},
		Tests: []stunclient.TCPBindingResult{
			{Name: nat.TCPPrimary, To: ap("198.51.100.20:3478"), Local: ap("192.168.1.2:39001"), Mapped: ap("203.0.113.2:20119"), RTT: ms(24.9)},
			{Name: nat.TCPOtherServer, To: ap("198.51.100.30:3478"), Local: ap("192.168.1.2:39001"), Mapped: ap("203.0.113.2:20120"), RTT: ms(31.2)},
		},
	}
}

// fxLifetime is the measurement quoted in docs/lifetime.md.
func fxLifetime() *lifetime.Result {
	return &lifetime.Result{
		Family: stunclient.IPv4, Method: lifetime.MethodResponsePort, Server: ap("203.0.113.10:3478"),
		Result: lifetime.Measured, Lower: ms(18810.2), Upper: ms(22101.7), Rounds: 1, Elapsed: ms(23102.4),
		Servers: []lifetime.Server{{Server: server("203.0.113.10"), Address: ap("203.0.113.10:3478"),
			Support: lifetime.RPSupported, Mapped: ap("203.0.113.2:40000"), LocalPort: 40000, RTT: ms(52.1)}},
		Probes: []lifetime.Probe{
			{Round: 1, Target: ms(18810), Idle: ms(18810.2), State: lifetime.ProbeAlive, Mapped: ap("203.0.113.2:40001")},
			{Round: 1, Target: ms(21950), Idle: ms(22101.7), State: lifetime.ProbeExpired, Mapped: ap("203.0.113.2:40002")},
			{Round: 1, Target: ms(29890), State: lifetime.ProbeSkipped, Mapped: ap("203.0.113.2:40003")},
		},
	}
}

// fxLifetimeUnknown: no server honours RESPONSE-PORT and the NAT keeps
// ports, so there is no answer; each server failed in its own way.
func fxLifetimeUnknown() *lifetime.Result {
	return &lifetime.Result{
		Family: stunclient.IPv4, Method: lifetime.MethodResponsePort, Established: true, Result: lifetime.Unknown,
		Reason: "no server honours RESPONSE-PORT and the NAT keeps ports, so an expired mapping cannot be told from a live one",
		Rounds: 0, Elapsed: ms(1204.6),
		Servers: []lifetime.Server{
			{Server: server("198.51.100.20"), Address: ap("198.51.100.20:3478"), Support: lifetime.RPIgnored,
				Mapped: ap("203.0.113.2:40500")},
			{Server: server("198.51.100.30"), Address: ap("198.51.100.30:3478"), Support: lifetime.RPRefused, ErrorCode: 420,
				Err: errors.New("STUN error 420 Unknown Attribute"), Mapped: ap("203.0.113.2:40501")},
			{Server: server("203.0.113.99"), Address: ap("203.0.113.99:3478"), Support: lifetime.RPNoAnswer,
				Err: errors.New("no answer")},
			{Server: server("stun.example.net")},
		},
	}
}

// fxServers are the servers `natcheck servers` lists, and fxServerChecks
// their probe: verified, advertised, absent, invalid and a dead one.
func fxServers() []stunclient.Server {
	return []stunclient.Server{server("203.0.113.10"), server("203.0.113.20:3478"), server("stun:stun.example.net"),
		server("203.0.113.30"), server("203.0.113.99"), server("[2001:db8:ff::10]")}
}

func fxServerChecks() []probe.ServerCheck {
	s := fxServers()
	return []probe.ServerCheck{
		{Server: s[0], Address: ap("203.0.113.10:3478"), Replied: true, RTT: ms(52.4), Mapped: ap("203.0.113.2:40123"),
			Other: ap("203.0.113.11:3479"), RFC5780: nat.RFC5780Verified},
		{Server: s[1], Address: ap("203.0.113.20:3478"), Replied: true, RTT: ms(61.07), Mapped: ap("203.0.113.2:40124"),
			Other: ap("203.0.113.21:3479"), RFC5780: nat.RFC5780Advertised},
		{Server: s[2], Address: ap("198.51.100.20:3478"), Replied: true, RTT: ms(24.45), Mapped: ap("203.0.113.2:40125"),
			RFC5780: nat.RFC5780Absent},
		{Server: s[3], Address: ap("203.0.113.30:3478"), Replied: true, RTT: ms(55.9), Mapped: ap("203.0.113.2:40126"),
			Other: ap("203.0.113.30:3479"), RFC5780: nat.RFC5780Invalid},
		{Server: s[4], Address: ap("203.0.113.99:3478"), RFC5780: nat.RFC5780Unknown,
			Err: errors.New("no answer within the grace period after another server's")},
		{Server: s[5], Address: ap("[2001:db8:ff::10]:3478"), Replied: true, RTT: ms(1.2), Mapped: ap("[2001:db8:ff::2]:51090"),
			Other: ap("[2001:db8:ff::11]:3479"), RFC5780: nat.RFC5780Verified},
	}
}

// fxReport is the full report quoted (in part) in README.md: every check
// done, with --lifetime.
func fxReport() FullInput {
	tr := typeResult(typeObservations(55959), ms(312.6))
	s := []stunclient.Server{server("203.0.113.10"), server("203.0.113.99")}
	return FullInput{
		Result: &diagnose.Result{
			Type: tr,
			Portmap: &portmap.Report{
				Gateway: portmap.Gateway{Addr: ip("192.168.1.1"), Local: ip("192.168.1.2"), Iface: "eth0"},
				Results: []portmap.Result{
					{Protocol: portmap.UPnP, Supported: tri.Yes, Server: "Debian/6.18.44 UPnP/1.1 MiniUPnPd/2.3.1",
						ExternalIP: ip("203.0.113.2"), MappingAdded: tri.Yes, MappingDeleted: tri.Yes,
						InternalPort: 40211, ExternalPort: 40211, Lifetime: 60 * time.Second,
						Timings: portmap.Timings{Discover: ms(52.6), ExternalIP: ms(8.1), Add: ms(12.9), Delete: ms(11.8), Total: ms(85.4)}},
					{Protocol: portmap.NATPMP, Supported: tri.Yes, Server: "epoch 88", ExternalIP: ip("203.0.113.2"),
						MappingAdded: tri.Yes, MappingDeleted: tri.Yes, InternalPort: 40212, ExternalPort: 40212, Lifetime: 60 * time.Second,
						Timings: portmap.Timings{Discover: ms(1.1), Add: ms(1.3), Delete: ms(1.2), Total: ms(3.6)}},
					{Protocol: portmap.PCP, Supported: tri.Yes, Server: "version 2, epoch 88", ExternalIP: ip("203.0.113.2"),
						MappingAdded: tri.Yes, MappingDeleted: tri.Yes, InternalPort: 40213, ExternalPort: 40213, Lifetime: 60 * time.Second,
						Timings: portmap.Timings{Discover: ms(1.0), Add: ms(1.2), Delete: ms(1.1), Total: ms(3.3)}},
				},
				Elapsed: ms(91.2),
			},
			IPv6:     fxIPv6Translated(),
			TCP:      fxTCP(),
			Servers:  fxServerChecks()[:1:1],
			Lifetime: fxLifetime(),
			Local: diagnose.Local{
				Interfaces: []nat.HostAddr{{Addr: ip("127.0.0.1"), Iface: "lo"}, {Addr: ip("192.168.1.2"), Iface: "eth0"},
					{Addr: ip("fd00:1::2"), Iface: "eth0"}, {Addr: ip("10.8.0.2"), Iface: "wg0", Tunnel: true}},
				Gateway:       portmap.Gateway{Addr: ip("192.168.1.1"), Local: ip("192.168.1.2"), Iface: "eth0"},
				InternetIface: "eth0",
			},
			Checks: []diagnose.Check{
				{Name: diagnose.CheckType, Status: diagnose.StatusDone, Note: "port-restricted-cone", Elapsed: ms(312.9)},
				{Name: diagnose.CheckPortmap, Status: diagnose.StatusDone, Note: "upnp yes, nat-pmp yes, pcp yes", Elapsed: ms(91.4)},
				{Name: diagnose.CheckIPv6, Status: diagnose.StatusDone, Note: "STUN over IPv6: works, path translated", Elapsed: ms(6.9)},
				{Name: diagnose.CheckTCP, Status: diagnose.StatusDone, Note: "mapping endpoint-independent", Elapsed: ms(6.4)},
				{Name: diagnose.CheckLifetime, Status: diagnose.StatusDone, Note: "measured", Elapsed: ms(23102.6)},
				{Name: diagnose.CheckServers, Status: diagnose.StatusDone, Note: "1 of 1 answered, 1 with verified RFC 5780 support", Elapsed: ms(105.2)},
				{Name: diagnose.CheckTurn, Status: diagnose.StatusSkipped, Note: "not run (--turn)"},
				{Name: diagnose.CheckLocal, Status: diagnose.StatusDone, Note: "4 addresses, default route via 192.168.1.1 dev eth0", Elapsed: ms(0.8)},
			},
			Elapsed: ms(23103.1),
		},
		Servers: s[:1],
		Version: "v0.9.0",
		At:      time.Date(2026, 3, 14, 9, 26, 53, 0, time.FixedZone("CET", 3600)),
	}
}

// fxReportFailed is a report where little worked: UDP and TCP got no
// answer, no default route, IPv6 unusable, port mapping skipped, the
// servers check ran out of time, lifetime not asked for.
func fxReportFailed() FullInput {
	s := []stunclient.Server{server("203.0.113.10"), server("203.0.113.99")}
	return FullInput{
		Result: &diagnose.Result{
			IPv6: fxIPv6NoRoute(),
			TCP: &probe.TCPMapping{Family: stunclient.IPv4, Mapping: nat.MappingUnknown, Elapsed: ms(5000.3),
				Reason: "no server answered over TCP",
				Servers: []stunclient.TCPBindingResult{
					{Name: nat.TCPProbe, To: ap("203.0.113.10:3478"), Err: errors.New("dial tcp4 0.0.0.0:0->203.0.113.10:3478: i/o timeout")},
					{Name: nat.TCPProbe, To: ap("203.0.113.99:3478"), Err: errors.New("dial tcp4 0.0.0.0:0->203.0.113.99:3478: i/o timeout")},
				},
				Tests: []stunclient.TCPBindingResult{}},
			Servers: []probe.ServerCheck{
				{Server: s[0], Address: ap("203.0.113.10:3478"), RFC5780: nat.RFC5780Unknown, Err: errors.New("no answer")},
				{Server: s[1], Address: ap("203.0.113.99:3478"), RFC5780: nat.RFC5780Unknown, Err: errors.New("no answer")},
			},
			Local: diagnose.Local{
				Interfaces: []nat.HostAddr{{Addr: ip("127.0.0.1"), Iface: "lo"}, {Addr: ip("100.72.14.9"), Iface: "wwan0"}},
				GatewayErr: errors.New("no IPv4 default route in /proc/net/route"),
			},
			Checks: []diagnose.Check{
				{Name: diagnose.CheckType, Status: diagnose.StatusFailed, Note: "no STUN server answered", Elapsed: ms(5000.6)},
				{Name: diagnose.CheckPortmap, Status: diagnose.StatusSkipped, Note: "not run (--no-portmap)"},
				{Name: diagnose.CheckIPv6, Status: diagnose.StatusDone, Note: "STUN over IPv6: no-route, path unknown", Elapsed: ms(0.5)},
				{Name: diagnose.CheckTCP, Status: diagnose.StatusFailed, Note: "no STUN server answered over TCP", Elapsed: ms(5000.4)},
				{Name: diagnose.CheckLifetime, Status: diagnose.StatusSkipped, Note: "not measured (--lifetime)"},
				{Name: diagnose.CheckServers, Status: diagnose.StatusTimeout, Note: "did not finish in time; partial: 0 of 2 answered, 0 with verified RFC 5780 support", Elapsed: ms(5000.1)},
				{Name: diagnose.CheckTurn, Status: diagnose.StatusSkipped, Note: "not run (--turn)"},
				{Name: diagnose.CheckLocal, Status: diagnose.StatusDone, Note: "2 addresses, no default route", Elapsed: ms(0.6)},
			},
			Elapsed: ms(5001.2),
		},
		Servers: s,
		Version: "(devel)",
		At:      time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC),
	}
}

// ---- goldens ---------------------------------------------------------------

// golden is one rendering and the file it must equal.
type golden struct {
	file   string // under testdata/
	render func(io.Writer) error
}

func jsonOf(v func() any) func(io.Writer) error {
	return func(w io.Writer) error { return WriteJSON(w, v()) }
}

// goldens lists every rendering under test, each through the function the
// command calls (see cmd/*.go).
func goldens() []golden {
	return append([]golden{
		// natcheck whoami [--json] [-v]
		{"whoami.json", jsonOf(func() any { return NewWhoAmIJSON(fxWhoAmI()) })},
		{"whoami.txt", func(w io.Writer) error { return WhoAmIText(w, fxWhoAmI(), false) }},
		{"whoami-verbose.txt", func(w io.Writer) error { return WhoAmIText(w, fxWhoAmI(), true) }},
		{"whoami-agree.json", jsonOf(func() any { return NewWhoAmIJSON(fxWhoAmIAgree()) })},
		{"whoami-agree-verbose.txt", func(w io.Writer) error { return WhoAmIText(w, fxWhoAmIAgree(), true) }},
		{"whoami-disagree.json", jsonOf(func() any { return NewWhoAmIJSON(fxWhoAmIDisagree()) })},
		{"whoami-disagree-verbose.txt", func(w io.Writer) error { return WhoAmIText(w, fxWhoAmIDisagree(), true) }},

		// natcheck type [--json] [-v] [--lifetime]
		{"type.json", jsonOf(func() any { return NewTypeJSON(stunclient.IPv4, fxType()) })},
		{"type.txt", func(w io.Writer) error { return TypeText(w, fxType(), false) }},
		{"type-verbose.txt", func(w io.Writer) error { return TypeText(w, fxType(), true) }},
		{"type-symmetric.json", jsonOf(func() any { return NewTypeJSON(stunclient.IPv4, fxTypeSymmetric()) })},
		{"type-symmetric-verbose.txt", func(w io.Writer) error { return TypeText(w, fxTypeSymmetric(), true) }},
		{"type-udp-blocked.json", jsonOf(func() any { return NewTypeJSON(stunclient.IPv4, fxTypeUDPBlocked()) })},
		{"type-udp-blocked.txt", func(w io.Writer) error { return TypeText(w, fxTypeUDPBlocked(), false) }},
		{"type-runs.json", jsonOf(func() any {
			r, runs := fxTypeRuns()
			j := NewTypeJSON(stunclient.IPv4, r)
			j.AddRuns(runs)
			return j
		})},
		{"type-runs.txt", func(w io.Writer) error { r, runs := fxTypeRuns(); return TypeRunsText(w, r, runs, false) }},
		{"type-runs-verbose.txt", func(w io.Writer) error { r, runs := fxTypeRuns(); return TypeRunsText(w, r, runs, true) }},
		{"type-lifetime.json", jsonOf(func() any {
			return NewTypeWithLifetimeJSON(stunclient.IPv4, fxType(), fxLifetime(), nil)
		})},
		{"type-lifetime-failed.json", jsonOf(func() any {
			return NewTypeWithLifetimeJSON(stunclient.IPv4, fxTypeSymmetric(), nil, errors.New("no STUN server answered"))
		})},
		{"type-lifetime.txt", func(w io.Writer) error {
			if err := TypeText(w, fxType(), false); err != nil {
				return err
			}
			return LifetimeOrError(w, fxLifetime(), nil, false)
		}},
		{"type-lifetime-failed.txt", func(w io.Writer) error {
			if err := TypeText(w, fxTypeSymmetric(), false); err != nil {
				return err
			}
			return LifetimeOrError(w, nil, errors.New("no STUN server answered"), false)
		}},

		// natcheck portmap [--json] [-v]
		{"portmap.json", jsonOf(func() any { return NewPortmapJSON(fxPortmap()) })},
		{"portmap.txt", func(w io.Writer) error { return PortmapText(w, fxPortmap(), false) }},
		{"portmap-verbose.txt", func(w io.Writer) error { return PortmapText(w, fxPortmap(), true) }},
		{"portmap-double-nat.json", jsonOf(func() any { return NewPortmapJSON(fxPortmapDoubleNAT()) })},
		{"portmap-double-nat-verbose.txt", func(w io.Writer) error { return PortmapText(w, fxPortmapDoubleNAT(), true) }},

		// natcheck ipv6 [--json] [-v]
		{"ipv6.json", jsonOf(func() any { return NewIPv6JSON(fxIPv6Translated()) })},
		{"ipv6.txt", func(w io.Writer) error { return IPv6Text(w, fxIPv6Translated(), false) }},
		{"ipv6-verbose.txt", func(w io.Writer) error { return IPv6Text(w, fxIPv6Translated(), true) }},
		{"ipv6-routed.json", jsonOf(func() any { return NewIPv6JSON(fxIPv6Routed()) })},
		{"ipv6-routed.txt", func(w io.Writer) error { return IPv6Text(w, fxIPv6Routed(), false) }},
		{"ipv6-no-route.json", jsonOf(func() any { return NewIPv6JSON(fxIPv6NoRoute()) })},
		{"ipv6-no-route-verbose.txt", func(w io.Writer) error { return IPv6Text(w, fxIPv6NoRoute(), true) }},

		// natcheck tcp [--json] [-v]
		{"tcp.json", jsonOf(func() any { return NewTCPMappingJSON(fxTCP()) })},
		{"tcp.txt", func(w io.Writer) error { return TCPMappingText(w, fxTCP(), false) }},
		{"tcp-verbose.txt", func(w io.Writer) error { return TCPMappingText(w, fxTCP(), true) }},
		{"tcp-other-server.json", jsonOf(func() any { return NewTCPMappingJSON(fxTCPOtherServer()) })},
		{"tcp-other-server-verbose.txt", func(w io.Writer) error { return TCPMappingText(w, fxTCPOtherServer(), true) }},

		// natcheck lifetime [--json] [-v]
		{"lifetime.json", jsonOf(func() any { return NewLifetimeJSON(fxLifetime()) })},
		{"lifetime.txt", func(w io.Writer) error { return LifetimeText(w, fxLifetime(), false) }},
		{"lifetime-verbose.txt", func(w io.Writer) error { return LifetimeText(w, fxLifetime(), true) }},
		{"lifetime-unknown.json", jsonOf(func() any { return NewLifetimeJSON(fxLifetimeUnknown()) })},
		{"lifetime-unknown-verbose.txt", func(w io.Writer) error { return LifetimeText(w, fxLifetimeUnknown(), true) }},

		// natcheck servers [--probe] [--json]
		{"servers.json", jsonOf(func() any { return NewServersJSON(stunclient.IPv4, fxServers(), nil) })},
		{"servers.txt", func(w io.Writer) error { return ServersText(w, fxServers(), nil) }},
		{"servers-probe.json", jsonOf(func() any { return NewServersJSON(stunclient.IPv4, fxServers(), fxServerChecks()) })},
		{"servers-probe.txt", func(w io.Writer) error { return ServersText(w, fxServers(), fxServerChecks()) }},

		// natcheck report [--json | --format markdown] [-v]
		{"report.json", jsonOf(func() any { return NewFullJSON(fxReport()) })},
		{"report.txt", func(w io.Writer) error { return FullText(w, fxReport(), false) }},
		{"report-verbose.txt", func(w io.Writer) error { return FullText(w, fxReport(), true) }},
		{"report.md", func(w io.Writer) error { return FullMarkdown(w, fxReport(), false) }},
		{"report-failed.json", jsonOf(func() any { return NewFullJSON(fxReportFailed()) })},
		{"report-failed.txt", func(w io.Writer) error { return FullText(w, fxReportFailed(), false) }},
		{"report-failed.md", func(w io.Writer) error { return FullMarkdown(w, fxReportFailed(), false) }},
		{"report-turn.json", jsonOf(func() any { return NewFullJSON(fxReportTurn()) })},
		{"report-turn.md", func(w io.Writer) error { return FullMarkdown(w, fxReportTurn(), false) }},
	}, append(append(turnGoldens(), peerGoldens()...), everyGoldens()...)...)
}

// render returns a golden's current output.
func (g golden) output(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := g.render(&b); err != nil {
		t.Fatalf("%s: rendering failed: %v", g.file, err)
	}
	return b.Bytes()
}

// renderGolden is the current output of the golden named file.
func renderGolden(t *testing.T, file string) string {
	t.Helper()
	for _, g := range goldens() {
		if g.file == file {
			return string(g.output(t))
		}
	}
	t.Fatalf("no golden named %s", file)
	return ""
}

func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range goldens() {
		t.Run(g.file, func(t *testing.T) {
			if seen[g.file] {
				t.Fatalf("two goldens named %s", g.file)
			}
			seen[g.file] = true
			got := g.output(t)
			path := filepath.Join("testdata", g.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./report -run Golden -update` to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (if intended: go test ./report -run Golden -update):\n%s",
					path, lineDiff(string(want), string(got)))
			}
			if strings.HasSuffix(g.file, ".json") {
				checkJSONDoc(t, got)
			}
		})
	}
	// A golden file nobody renders any more is a contract nobody checks.
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s is not rendered by any golden test: remove it or add a golden", f)
		}
	}
}

// checkJSONDoc checks what docs/json.md promises of every --json output:
// one object and a newline, with schema_version 1, and the same in every
// nested object that is a document of its own.
func checkJSONDoc(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("}\n")) || bytes.Count(b, []byte("\n}\n")) != 1 {
		t.Errorf("not one JSON object followed by a newline")
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("does not decode: %v", err)
	}
	if dec.More() {
		t.Error("more than one JSON value")
	}
	if v, ok := m["schema_version"]; !ok || v != float64(SchemaVersion) {
		t.Errorf("schema_version = %v (present %v), want %d", v, ok, SchemaVersion)
	}
	// The nested check documents of `report --json` and `type --lifetime`.
	for _, k := range []string{"port_mapping", "ipv6", "tcp", "binding_lifetime"} {
		if sub, ok := m[k].(map[string]any); ok && sub["schema_version"] != float64(SchemaVersion) {
			t.Errorf("%s.schema_version = %v, want %d", k, sub["schema_version"], SchemaVersion)
		}
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 8; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
