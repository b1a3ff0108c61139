package nat

import (
	"fmt"
	"net/netip"
	"strings"
)

// ServerView is what one server told the mapping socket: the mapped
// addresses it named (tests I-III and every repeat for the primary, its
// binding and repeat for another server), and whether its mapping
// evidence is used.
type ServerView struct {
	Server  netip.AddrPort   // the address the binding round asked
	Saw     []netip.AddrPort // distinct mapped addresses named, in order
	Answers int              // answers counted
	// Confirmed: some destination of this server answered twice, alike.
	Confirmed bool
	// Excluded says why the server's mapping evidence is not used: two
	// different mappings for one destination from one socket (no NAT
	// changes an existing mapping between two requests), or an impossible
	// mapped address. Empty when it is used.
	Excluded string
}

// Plausible reports whether a mapped address can be a real mapping as
// seen by server to: valid, not unspecified, not multicast, a port, and
// of the family the request went over.
func Plausible(mapped, to netip.AddrPort) bool {
	m, d := mapped.Addr().Unmap(), to.Addr().Unmap()
	return mapped.IsValid() && mapped.Port() != 0 && !m.IsUnspecified() && !m.IsMulticast() && m.Is4() == d.Is4()
}

// onMappingSocket tells whether a test ran from the mapping socket.
func onMappingSocket(n TestName) bool {
	switch n {
	case TestBinding, TestServer, TestMappingAltIP, TestMappingAltIPPort, TestRepeat:
		return true
	}
	return false
}

// ServerViews groups the mapping socket's answers by server and checks
// each server against itself. The primary server (test I) owns its
// OTHER-ADDRESS and alternate IP as well.
func ServerViews(o Observations) []ServerView {
	var views []ServerView
	index := map[netip.AddrPort]int{} // destination -> view
	if t := o.Test(TestBinding); t != nil {
		views = append(views, ServerView{Server: Unmap(t.To)})
		index[Unmap(t.To)] = 0
		if other := Unmap(t.OtherAddress); other.IsValid() {
			index[other] = 0
			index[netip.AddrPortFrom(other.Addr(), t.To.Port())] = 0
		}
	}
	for _, t := range o.Tests {
		if t.Name == TestServer || t.Name == TestRepeat {
			if _, ok := index[Unmap(t.To)]; !ok {
				index[Unmap(t.To)] = len(views)
				views = append(views, ServerView{Server: Unmap(t.To)})
			}
		}
	}
	first := map[netip.AddrPort]netip.AddrPort{} // destination -> first mapping named
	for _, t := range o.Tests {
		if !onMappingSocket(t.Name) || !t.Replied || t.ErrorCode != 0 {
			continue
		}
		i, ok := index[Unmap(t.To)]
		if !ok {
			continue
		}
		v := &views[i]
		pub, dest := Unmap(t.Public()), Unmap(t.To)
		if !pub.IsValid() {
			continue
		}
		v.Answers++
		if !containsAddr(v.Saw, pub) {
			v.Saw = append(v.Saw, pub)
		}
		if v.Excluded != "" {
			continue
		}
		if !Plausible(pub, dest) {
			v.Excluded = fmt.Sprintf("it named an impossible public address %s", addr(pub))
			continue
		}
		prev, seen := first[dest]
		switch {
		case !seen:
			first[dest] = pub
		case prev != pub:
			v.Excluded = fmt.Sprintf("it named %s and then %s for the same socket asking %s", addr(prev), addr(pub), addr(dest))
		default:
			v.Confirmed = true
		}
	}
	for i := range views {
		if views[i].Excluded != "" {
			views[i].Confirmed = false // one destination alike proves nothing then
		}
	}
	return views
}

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, b := range as {
		if b == a {
			return true
		}
	}
	return false
}

// trusted is o without the mapping-socket answers of excluded servers.
func trusted(o Observations, views []ServerView) Observations {
	excluded := map[netip.AddrPort]bool{}
	for _, v := range views {
		if v.Excluded != "" {
			excluded[v.Server] = true
		}
	}
	if len(excluded) == 0 {
		return o
	}
	owner := map[netip.AddrPort]netip.AddrPort{}
	if t := o.Test(TestBinding); t != nil {
		p := Unmap(t.To)
		owner[p] = p
		if other := Unmap(t.OtherAddress); other.IsValid() {
			owner[other] = p
			owner[netip.AddrPortFrom(other.Addr(), p.Port())] = p
		}
	}
	out := o
	out.Tests = nil
	for _, t := range o.Tests {
		srv, ok := owner[Unmap(t.To)]
		if !ok {
			srv = Unmap(t.To)
		}
		if onMappingSocket(t.Name) && excluded[srv] {
			continue
		}
		out.Tests = append(out.Tests, t)
	}
	return out
}

// consistencyEvidence says which servers were excluded and, as whoami
// does, which servers saw which public address when the ones used
// disagree.
func consistencyEvidence(views []ServerView) []string {
	var out []string
	var used []ServerView
	for _, v := range views {
		if v.Excluded != "" {
			out = append(out, fmt.Sprintf("server %s not believed: %s; its mapping evidence is not used", addr(v.Server), v.Excluded))
		} else if len(v.Saw) > 0 {
			used = append(used, v)
		}
	}
	ips := map[netip.Addr]bool{}
	for _, v := range used {
		for _, s := range v.Saw {
			ips[s.Addr()] = true
		}
	}
	if len(ips) > 1 {
		var parts []string
		for _, v := range used {
			var saw []string
			for _, s := range v.Saw {
				saw = append(saw, addr(s))
			}
			how := "once"
			if v.Confirmed {
				how = "confirmed"
			}
			parts = append(parts, fmt.Sprintf("%s saw %s (%s)", addr(v.Server), strings.Join(saw, " and "), how))
		}
		out = append(out, "public address: servers DISAGREE: "+strings.Join(parts, "; "))
	}
	return out
}
