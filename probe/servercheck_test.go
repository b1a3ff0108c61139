package probe

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/gather"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/pion/transport/v4/vnet"
)

func TestCheckServersRFC5780Support(t *testing.T) {
	tests := []struct {
		name string
		flaw serverFlaw
		want nat.RFC5780
	}{
		{"honest", honest, nat.RFC5780Verified},
		{"plain", noRFC5780, nat.RFC5780Absent},
		{"other-address-on-same-ip", otherSameIP, nat.RFC5780Invalid},
		{"answers-change-from-primary", changeIgnore, nat.RFC5780Invalid},
		{"drops-change-requests", changeDrop, nat.RFC5780Advertised},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), tt.flaw)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			got := CheckServers(ctx, n, nil, stunclient.IPv4, []stunclient.Server{stuntest.ServerAt(t, servers[0])})
			if len(got) != 1 || !got[0].Replied {
				t.Fatalf("no answer: %+v", got)
			}
			if got[0].RFC5780 != tt.want {
				t.Errorf("rfc5780 = %q, want %q (%+v)", got[0].RFC5780, tt.want, got[0])
			}
		})
	}
}

// A dead server, first or last, is given up a grace period after the live
// one answered (not at the 20 s time limit) and its RFC 5780 support is
// unknown, not absent.
func TestCheckServersPlainAndDead(t *testing.T) {
	plain := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	dead := stuntest.Dead(t, "127.0.0.2")
	for _, order := range [][2]int{{0, 1}, {1, 0}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ss := []stunclient.Server{stuntest.ServerAt(t, plain.Addr), stuntest.ServerAt(t, dead)}
		got := CheckServers(ctx, nil, nil, stunclient.IPv4, []stunclient.Server{ss[order[0]], ss[order[1]]})
		cancel()
		p, d := got[order[0]], got[order[1]]
		if !p.Replied || p.RFC5780 != nat.RFC5780Absent || p.RTT <= 0 {
			t.Errorf("plain server: %+v", p)
		}
		if d.Replied || d.RFC5780 != nat.RFC5780Unknown || !errors.Is(d.Err, gather.ErrGaveUp) {
			t.Errorf("dead server: %+v; want no answer within the grace period, rfc5780 unknown", d)
		}
	}
}

func TestCheckServersAllDeadIsUnknown(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got := CheckServers(ctx, nil, nil, stunclient.IPv4, []stunclient.Server{stuntest.ServerAt(t, dead)})
	if got[0].Replied || got[0].RFC5780 != nat.RFC5780Unknown || got[0].Err == nil {
		t.Errorf("dead server: %+v; want no answer, rfc5780 unknown", got[0])
	}
}
