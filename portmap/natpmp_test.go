package portmap

import (
	"bytes"
	"context"
	"errors"
	"github.com/natcheck/natcheck/internal/tri"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Requests byte for byte as RFC 6886 sections 3.2 to 3.4 lay them out.
func TestNATPMPRequestWire(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  natpmpRequest
		want []byte
	}{
		// 3.2: version 0, opcode 0, nothing else.
		{"external address", natpmpRequest{Opcode: natpmpOpExternalAddr}, []byte{0, 0}},
		// 3.3: version, opcode 1 (UDP), reserved, internal port 4500,
		// suggested external 4500, the recommended lifetime 7200 s.
		{"map UDP", natpmpRequest{Opcode: natpmpOpMapUDP, InternalPort: 4500, ExternalPort: 4500, Lifetime: 7200},
			[]byte{0, 1, 0, 0, 0x11, 0x94, 0x11, 0x94, 0, 0, 0x1c, 0x20}},
		// Opcode 2 (TCP), no preferred external port.
		{"map TCP", natpmpRequest{Opcode: natpmpOpMapTCP, InternalPort: 8080, Lifetime: 3600},
			[]byte{0, 2, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0x0e, 0x10}},
		// 3.4: deletion is the mapping request with lifetime 0 and
		// suggested external port 0.
		{"delete UDP", natpmpRequest{Opcode: natpmpOpMapUDP, InternalPort: 4500},
			[]byte{0, 1, 0, 0, 0x11, 0x94, 0, 0, 0, 0, 0, 0}},
	} {
		if got := tc.req.marshal(); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: % x, want % x", tc.name, got, tc.want)
		}
	}
}

func TestParseNATPMPResponse(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		b    []byte
		want natpmpResponse
	}{
		// 3.2: version 0, opcode 128, result 0, epoch 7200, 198.51.100.7.
		{"external address", []byte{0, 128, 0, 0, 0, 0, 0x1c, 0x20, 198, 51, 100, 7},
			natpmpResponse{Opcode: 0, Epoch: 7200, ExternalIP: a("198.51.100.7")}},
		// 3.3: opcode 129 (UDP), epoch 42, internal 4500, mapped 45000, 7200 s.
		{"map UDP", []byte{0, 129, 0, 0, 0, 0, 0, 42, 0x11, 0x94, 0xaf, 0xc8, 0, 0, 0x1c, 0x20},
			natpmpResponse{Opcode: 1, Epoch: 42, InternalPort: 4500, ExternalPort: 45000, Lifetime: 7200}},
		{"map TCP", []byte{0, 130, 0, 0, 0, 0, 0, 42, 0x1f, 0x90, 0x1f, 0x90, 0, 0, 0x0e, 0x10},
			natpmpResponse{Opcode: 2, Epoch: 42, InternalPort: 8080, ExternalPort: 8080, Lifetime: 3600}},
		// 3.4: a confirmed deletion has external port and lifetime 0.
		{"deleted", []byte{0, 129, 0, 0, 0, 0, 0, 42, 0x11, 0x94, 0, 0, 0, 0, 0, 0},
			natpmpResponse{Opcode: 1, Epoch: 42, InternalPort: 4500}},
		// 3.5: "unsupported version", 8 bytes, as corrected by erratum
		// 3618 (OP = 128) and as first printed (OP = 0).
		{"unsupported version", []byte{0, 128, 0, 1, 0, 0, 0, 9}, natpmpResponse{Result: 1, Epoch: 9}},
		{"unsupported version, OP 0", []byte{0, 0, 0, 1, 0, 0, 0, 9}, natpmpResponse{Result: 1, Epoch: 9}},
		{"not authorized", []byte{0, 129, 0, 2, 0, 0, 0, 42, 0x11, 0x94, 0, 0, 0, 0, 0, 0},
			natpmpResponse{Opcode: 1, Result: 2, Epoch: 42, InternalPort: 4500}},
		{"network failure, short", []byte{0, 128, 0, 3, 0, 0, 0, 42}, natpmpResponse{Result: 3, Epoch: 42}},
		{"network failure", []byte{0, 128, 0, 3, 0, 0, 0, 42, 0, 0, 0, 0},
			natpmpResponse{Result: 3, Epoch: 42, ExternalIP: a("0.0.0.0")}},
		{"out of resources", []byte{0, 130, 0, 4, 0, 0, 0, 42}, natpmpResponse{Opcode: 2, Result: 4, Epoch: 42}},
		// The request echoed with the response bit and result 5.
		{"unsupported opcode", []byte{0, 0x83, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0}, natpmpResponse{Opcode: 3, Result: 5}},
	} {
		got, err := parseNATPMPResponse(tc.b)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestParseNATPMPResponseRejects(t *testing.T) {
	ok := []byte{0, 129, 0, 0, 0, 0, 0, 42, 0x11, 0x94, 0x11, 0x94, 0, 0, 0x1c, 0x20}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, nil},
		{"short", []byte{0, 128, 0, 1}, nil},
		{"short success", []byte{0, 128, 0, 0, 0, 0, 0, 42}, nil},
		{"truncated mapping", ok[:12], nil},
		{"oversized mapping", append(append([]byte(nil), ok...), 0, 0, 0, 0), nil},
		{"oversized error", make([]byte, 20), nil},
		{"address response of mapping length", append([]byte{0, 128}, ok[2:]...), nil},
		{"request", []byte{0, 1, 0, 0, 0x11, 0x94, 0, 0, 0, 0, 0, 0}, nil},
		{"version 1", append([]byte{1}, ok[1:]...), nil},
		{"PCP answer", append([]byte{2, 0x81, 0, 1}, make([]byte, 20)...), errPCPAnswer},
		{"unknown opcode success", []byte{0, 0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil},
	} {
		if _, err := parseNATPMPResponse(tc.b); err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err %v, want an error (%v)", tc.name, err, tc.want)
		}
	}
}

func TestNATPMPResultError(t *testing.T) {
	for code, want := range map[NATPMPResult]string{
		1: "NAT-PMP result 1 (unsupported version)",
		2: "NAT-PMP result 2 (not authorized/refused)",
		3: "NAT-PMP result 3 (network failure: the gateway has no external address)",
		4: "NAT-PMP result 4 (out of resources)",
		5: "NAT-PMP result 5 (unsupported opcode)",
		9: "NAT-PMP result 9",
	} {
		var err error = &NATPMPResultError{Code: code}
		var re *NATPMPResultError
		if err.Error() != want || !errors.As(err, &re) || re.Code != code {
			t.Errorf("code %d: %q, want %q", code, err, want)
		}
	}
}

// FuzzNATPMPResponse: no input makes the parser panic, and what it accepts
// satisfies the framing rules.
func FuzzNATPMPResponse(f *testing.F) {
	f.Add([]byte{0, 128, 0, 0, 0, 0, 0, 42, 198, 51, 100, 7})
	f.Add([]byte{0, 129, 0, 0, 0, 0, 0, 42, 0x11, 0x94, 0x11, 0x94, 0, 0, 0x1c, 0x20})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 9})
	f.Add([]byte{2, 0x80, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseNATPMPResponse(b)
		if err != nil {
			if r != (natpmpResponse{}) {
				t.Fatalf("error %v with a response %+v", err, r)
			}
			return
		}
		if len(b) < natpmpErrRespLen || len(b) > natpmpMapRespLen || b[0] != natpmpVersion {
			t.Fatalf("accepted a badly framed message % x", b)
		}
		if b[1]&pcpResponseBit == 0 && (b[1] != 0 || r.Result != NATPMPUnsupportedVersion) {
			t.Fatalf("accepted a request % x", b)
		}
		if r.Result == NATPMPSuccess && len(b) != natpmpRespLen(r.Opcode) {
			t.Fatalf("accepted a success of the wrong length % x", b)
		}
	})
}

// natpmpTestClient is a client connected to g's NAT-PMP port.
func natpmpTestClient(t *testing.T, g *fakeGateway) natpmpClient {
	t.Helper()
	gw := g.gateway()
	conn, err := dialGateway(Gateway{Addr: gw.Addr, Local: gw.Local}, natpmpPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return natpmpClient{conn}
}

func TestNATPMPClient(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", false, true)
	c := natpmpTestClient(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	ext, _, err := c.ExternalAddress(ctx)
	if err != nil || ext.ExternalIP != g.external || ext.Epoch != 42 {
		t.Fatalf("external address %+v, %v", ext, err)
	}
	for _, op := range []uint8{natpmpOpMapUDP, natpmpOpMapTCP} {
		m, _, err := c.Map(ctx, op, 4500, 4501, 60)
		if err != nil || m.Opcode != op || m.InternalPort != 4500 || m.ExternalPort != 4501 || m.Lifetime != 60 {
			t.Errorf("map %d: %+v, %v", op, m, err)
		}
	}
	if live := g.live(); len(live) != 2 {
		t.Errorf("live after mapping: %v, want UDP and TCP", live)
	}
	for _, op := range []uint8{natpmpOpMapUDP, natpmpOpMapTCP} {
		if d, _, err := c.Unmap(ctx, op, 4500); err != nil || d.ExternalPort != 0 || d.Lifetime != 0 {
			t.Errorf("unmap %d: %+v, %v", op, d, err)
		}
	}
	if live := g.live(); len(live) != 0 {
		t.Errorf("live after deletion: %v", live)
	}
	if _, _, err := c.Map(ctx, 3, 1, 1, 1); err == nil {
		t.Error("opcode 3 accepted as a mapping")
	}
}

func TestNATPMPClientResultCodes(t *testing.T) {
	for code := NATPMPUnsupportedVersion; code <= NATPMPUnsupportedOpcode; code++ {
		g := newFakeGateway(t, "198.51.100.7", false, true)
		g.configure(func(g *fakeGateway) { g.pmpResult = code })
		c := natpmpTestClient(t, g)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err1 := c.ExternalAddress(ctx)
		_, _, err2 := c.Map(ctx, natpmpOpMapUDP, 4500, 4500, 60)
		cancel()
		for _, err := range []error{err1, err2} {
			var re *NATPMPResultError
			if !errors.As(err, &re) || re.Code != code {
				t.Errorf("code %d: err %v", code, err)
			}
		}
		if len(g.live()) != 0 {
			t.Errorf("code %d: mapped %v", code, g.live())
		}
	}
}

// A silent gateway: the deadline ends the wait on time, after the
// transmissions RFC 6886's schedule fits in it (0, 250, 750 ms).
func TestNATPMPClientNoAnswer(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", false, true)
	g.configure(func(g *fakeGateway) { g.pmpSilent = true })
	c := natpmpTestClient(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.ExternalAddress(ctx)
	took := time.Since(start)
	var na errNoAnswer
	if !errors.Is(err, ErrNoAnswer) || !errors.As(err, &na) || na.tries != 3 {
		t.Fatalf("err %v, want no answer after 3 transmissions", err)
	}
	if took < 850*time.Millisecond || took > 1400*time.Millisecond {
		t.Errorf("took %s for a 900 ms deadline", took)
	}
	if n := g.pmpRequests(); n != 3 {
		t.Errorf("gateway got %d requests, want 3", n)
	}
	if !strings.HasPrefix(err.Error(), "no answer in 900ms (3 transmissions)") {
		t.Errorf("message %q", err)
	}
}

// Cancelling ends a wait at once, with ctx's error rather than "no answer".
func TestNATPMPClientCancel(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", false, true)
	g.configure(func(g *fakeGateway) { g.pmpSilent = true })
	c := natpmpTestClient(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := c.Map(ctx, natpmpOpMapUDP, 4500, 4500, 60)
	if took := time.Since(start); !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoAnswer) || took > 400*time.Millisecond {
		t.Errorf("err %v after %s, want context.Canceled soon after 100ms", err, took)
	}
}

func TestNATPMPClientOtherAnswers(t *testing.T) {
	g := newFakeGateway(t, "198.51.100.7", false, true)
	g.configure(func(g *fakeGateway) { g.pmpAsPCP = true })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := natpmpTestClient(t, g).ExternalAddress(ctx); !errors.Is(err, errPCPAnswer) {
		t.Errorf("PCP answer: err %v", err)
	}
	// Nothing listening: ICMP port unreachable ends it at once.
	nobody := &fakeGateway{addr: loopbackAddr()}
	if _, _, err := natpmpTestClient(t, nobody).ExternalAddress(ctx); !errors.Is(err, ErrRefused) {
		t.Errorf("nothing listening: err %v", err)
	}
}

// What Check reports for a NAT-PMP server's refusals and for silence.
func TestCheckNATPMPAnswers(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		setup                 func(*fakeGateway)
		supported, added, del tri.Bool
		err                   string
	}{
		{"mapping refused", func(g *fakeGateway) { g.pmpMapResult = NATPMPNotAuthorized },
			tri.Yes, tri.No, tri.Unknown, "mapping: NAT-PMP result 2 (not authorized/refused)"},
		{"out of resources", func(g *fakeGateway) { g.pmpMapResult = NATPMPOutOfResources },
			tri.Yes, tri.No, tri.Unknown, "mapping: NAT-PMP result 4 (out of resources)"},
		{"unsupported version", func(g *fakeGateway) { g.pmpResult = NATPMPUnsupportedVersion },
			tri.No, tri.Unknown, tri.Unknown, "external address: NAT-PMP result 1 (unsupported version)"},
		{"PCP answer", func(g *fakeGateway) { g.pmpAsPCP = true },
			tri.No, tri.Unknown, tri.Unknown, "unknown protocol version 2 (server responded with PCP / Port Control Protocol)"},
		{"silent", func(g *fakeGateway) { g.pmpSilent = true },
			tri.No, tri.Unknown, tri.Unknown, "no answer in 300ms (2 transmissions)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGateway(t, "198.51.100.7", false, true)
			g.configure(tc.setup)
			rep, err := Check(context.Background(), Options{Gateway: g.gateway(), Protocols: []Protocol{NATPMP}, Wait: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			r, _ := rep.Result(NATPMP)
			if r.Supported != tc.supported || r.MappingAdded != tc.added || r.MappingDeleted != tc.del || r.Err == nil || r.Err.Error() != tc.err {
				t.Errorf("%+v; want supported %v added %v deleted %v, error %q", r, tc.supported, tc.added, tc.del, tc.err)
			}
			if len(g.live()) != 0 {
				t.Errorf("live %v", g.live())
			}
		})
	}
}
