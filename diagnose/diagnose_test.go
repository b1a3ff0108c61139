package diagnose

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/pion/turn/v4"
)

// A run against one plain loopback server: every check reports, none
// holds the others up, and the port-mapping test (which would talk to the
// machine's real gateway) is skipped.
func TestRunReportsEveryCheck(t *testing.T) {
	srv := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	s, err := stunclient.ParseServer(srv.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var started []CheckName
	res, err := Run(context.Background(), Options{
		Servers: []stunclient.Server{s}, Timeout: 2 * time.Second, NoPortmap: true,
		Start: func(name CheckName) Step { started = append(started, name); return nopStep{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[CheckName]Status{
		CheckType: StatusDone, CheckPortmap: StatusSkipped, CheckIPv6: StatusDone, CheckTCP: StatusFailed,
		CheckLifetime: StatusSkipped, CheckServers: StatusDone, CheckTurn: StatusSkipped, CheckLocal: StatusDone,
	}
	if len(res.Checks) != len(want) || len(started) != len(want) {
		t.Fatalf("checks %+v, started %v; want %d of each", res.Checks, started, len(want))
	}
	for i, c := range res.Checks {
		if c.Name != checkOrder[i] {
			t.Errorf("check %d is %s, want %s (report order)", i, c.Name, checkOrder[i])
		}
		if c.Status != want[c.Name] {
			t.Errorf("%s: status %s (%s), want %s", c.Name, c.Status, c.Note, want[c.Name])
		}
	}
	if res.Type == nil || res.Type.Public.Addr().String() != "127.0.0.1" {
		t.Errorf("type result %+v", res.Type)
	}
	if len(res.Servers) != 1 || !res.Servers[0].Replied {
		t.Errorf("server checks %+v", res.Servers)
	}
	if len(res.Local.Interfaces) == 0 {
		t.Error("no interfaces in the local picture")
	}
}

// A dead server: the checks end by the deadline and say so.
func TestRunWithDeadServerEndsByTimeout(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	s, _ := stunclient.ParseServer(dead.String())
	start := time.Now()
	res, err := Run(context.Background(), Options{Servers: []stunclient.Server{s}, Timeout: 700 * time.Millisecond, NoPortmap: true})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v with a 700ms timeout", el)
	}
	if c, _ := res.Check(CheckType); c.Status == StatusDone {
		t.Errorf("type check against a dead server: %+v", c)
	}
}

func TestRunCancelled(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	s, _ := stunclient.ParseServer(dead.String())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Run(ctx, Options{Servers: []stunclient.Server{s}, Timeout: 5 * time.Second, NoPortmap: true})
	if err == nil {
		t.Fatal("want the cancellation reported")
	}
}

// IPv6 literals are checked over IPv6, the rest over IPv4, in order.
func TestServersCheckedInTheirOwnFamily(t *testing.T) {
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	b := stuntest.Serve(t, c, stuntest.Behaviour{})
	servers := []stunclient.Server{stuntest.ServerAt(t, b.Addr), stuntest.ServerAt(t, a.Addr)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got := probe.CheckServers(ctx, nil, nil, 0, servers)
	if len(got) != 2 || !got[0].Replied || !got[1].Replied || got[0].Address != b.Addr || got[1].Address != a.Addr {
		t.Errorf("checks %+v; want both answered, in the given order", got)
	}
}

// A dead IPv6 server beside a live IPv4 one is given up a grace after the
// IPv4 answer: the check returns long before its time limit.
func TestServersDeadFamilyCostsAGrace(t *testing.T) {
	a := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	dead := stuntest.Serve(t, c, stuntest.Behaviour{Drop: func(int) bool { return true }})
	servers := []stunclient.Server{stuntest.ServerAt(t, a.Addr), stuntest.ServerAt(t, dead.Addr)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := probe.CheckServers(ctx, nil, nil, 0, servers)
	if ctx.Err() != nil {
		t.Fatal("the dead IPv6 server held the check to its time limit")
	}
	if !got[0].Replied || got[1].Replied || got[1].RFC5780 != nat.RFC5780Unknown {
		t.Errorf("checks %+v; want the IPv4 server answered, the IPv6 one unknown", got)
	}
}

// report --turn: the relays are one more check, under the same timeout,
// in its place in the report order.
func TestRunChecksTurn(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := turn.GenerateAuthKey("alice", "example.org", "pw")
	s, err := turn.NewServer(turn.ServerConfig{
		Realm:       "example.org",
		AuthHandler: func(u, _ string, _ net.Addr) ([]byte, bool) { return key, u == "alice" },
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stun := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	srv, _ := stunclient.ParseServer(stun.Addr.String())
	u, _ := turncheck.ParseURI("turn:" + pc.LocalAddr().String())
	var started []CheckName
	res, err := Run(context.Background(), Options{
		Servers: []stunclient.Server{srv}, Timeout: 2 * time.Second, NoPortmap: true,
		Turn: []turncheck.URI{u}, TurnOptions: turncheck.Options{User: "alice", Password: "pw", Packets: 3},
		Start: func(name CheckName) Step { started = append(started, name); return nopStep{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := res.Check(CheckTurn)
	if !ok || c.Status != StatusDone || c.Note != "relay works" || len(res.Turn) != 1 || res.Turn[0].Verdict != turncheck.Works {
		t.Errorf("turn check %+v, results %+v", c, res.Turn)
	}
	if !slices.Contains(started, CheckTurn) {
		t.Errorf("turn check not announced: %v", started)
	}
	if i := slices.IndexFunc(res.Checks, func(c Check) bool { return c.Name == CheckTurn }); i < 1 || res.Checks[i-1].Name != CheckServers || res.Checks[i+1].Name != CheckLocal {
		t.Errorf("checks in order %+v", res.Checks)
	}
}
