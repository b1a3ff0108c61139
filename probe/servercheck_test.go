package probe

import (
	"context"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/pion/transport/v3/vnet"
)

func TestCheckServersRFC5780Support(t *testing.T) {
	tests := []struct {
		name string
		flaw serverFlaw
		want string
	}{
		{"honest", honest, "verified"},
		{"plain", noRFC5780, "absent"},
		{"other-address-on-same-ip", otherSameIP, "invalid"},
		{"answers-change-from-primary", changeIgnore, "invalid"},
		{"drops-change-requests", changeDrop, "advertised"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, servers := world(t, natType(vnet.EndpointIndependent, vnet.EndpointIndependent), tt.flaw)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			got := CheckServers(ctx, n, IPv4, []Server{serverAt(t, servers[0])})
			if len(got) != 1 || !got[0].Replied {
				t.Fatalf("no answer: %+v", got)
			}
			if got[0].RFC5780 != tt.want {
				t.Errorf("rfc5780 = %q, want %q (%+v)", got[0].RFC5780, tt.want, got[0])
			}
		})
	}
}

func TestCheckServersPlainAndDead(t *testing.T) {
	plain := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	dead := stuntest.Dead(t, "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	got := CheckServers(ctx, nil, IPv4, []Server{serverAt(t, plain.Addr), serverAt(t, dead)})
	if !got[0].Replied || got[0].RFC5780 != "absent" || got[0].RTT <= 0 {
		t.Errorf("plain server: %+v", got[0])
	}
	if got[1].Replied || got[1].Err == "" {
		t.Errorf("dead server: %+v", got[1])
	}
}
