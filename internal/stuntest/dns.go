package stuntest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// SilentResolver is a resolver whose DNS server never answers: its
// queries go to a loopback UDP port that reads and drops them. It stands
// for a hanging resolver, or an offline host's.
func SilentResolver(t testing.TB) *net.Resolver {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("silent DNS server: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return resolverAt(c.LocalAddr().String())
}

// DNSResolver is a resolver whose DNS server, on loopback, answers A and
// AAAA queries from records (names without the final dot, any case): a
// name it holds gets its addresses of the type asked (none, NOERROR, for
// the other type); any other name gets NXDOMAIN.
func DNSResolver(t testing.TB, records map[string][]netip.Addr) *net.Resolver {
	return SlowDNSResolver(t, 0, records)
}

// SlowDNSResolver is DNSResolver answering each query delay late: a slow
// (or far) DNS server.
func SlowDNSResolver(t testing.TB, delay time.Duration, records map[string][]netip.Addr) *net.Resolver {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("DNS server: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if out, ok := dnsAnswer(buf[:n], records); ok {
				time.AfterFunc(delay, func() { c.WriteTo(out, from) })
			}
		}
	}()
	return resolverAt(c.LocalAddr().String())
}

// resolverAt is a pure-Go resolver that sends every query to addr over UDP.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", addr)
		},
	}
}

func dnsAnswer(query []byte, records map[string][]netip.Addr) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	addrs, known := records[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			if b.AResource(rr, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			if b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
