package turncheck

import (
	"fmt"
	"strings"
)

// CompareTransports rewrites the cause of each UDP server that got no
// answer with what the TCP and TLS URIs of the same host (same name or
// same address) found in the same run: one that works shows that UDP is
// blocked on the path; one that was reached but failed still shows the
// server is up; none answering points at the server or the whole path.
func CompareTransports(rs []Result) {
	for i := range rs {
		u := &rs[i]
		if u.URI.Transport != UDP || u.Verdict != Unreachable || !u.silent {
			continue
		}
		var works, reached, silent []string
		for j := range rs {
			o := &rs[j]
			if j == i || o.URI.Transport == UDP || !sameHost(*u, *o) {
				continue
			}
			switch o.Verdict {
			case Works:
				works = append(works, o.URI.Raw)
			case Failed:
				reached = append(reached, fmt.Sprintf("%s (reached, then failed at %s)", o.URI.Raw, o.FailedStep))
			default:
				silent = append(silent, o.URI.Raw)
			}
		}
		switch {
		case len(works) > 0:
			u.Cause = fmt.Sprintf("no answer over UDP, but %s works: UDP is blocked on the path (or the server does not listen on UDP); use %s", strings.Join(works, " and "), works[0])
		case len(reached) > 0:
			u.Cause = fmt.Sprintf("no answer over UDP, but the server answered over %s: the server is up, so UDP is blocked on the path (or the server does not listen on UDP)", strings.Join(reached, " and "))
		case len(silent) > 0:
			u.Cause = fmt.Sprintf("no answer over UDP, and %s could not be reached either (%s failed too): the server is down, or the path blocks it entirely", strings.Join(silent, " and "), failedTransports(rs, silent))
		}
	}
}

func sameHost(a, b Result) bool {
	if strings.EqualFold(a.URI.Host, b.URI.Host) {
		return true
	}
	return a.Address.IsValid() && b.Address.IsValid() && a.Address.Addr() == b.Address.Addr()
}

// failedTransports names the transports of the given URIs: "TLS", "TCP",
// "TCP and TLS".
func failedTransports(rs []Result, uris []string) string {
	var tcp, tls bool
	for _, r := range rs {
		for _, u := range uris {
			if r.URI.Raw == u {
				tcp = tcp || r.URI.Transport == TCP
				tls = tls || r.URI.Transport == TLS
			}
		}
	}
	switch {
	case tcp && tls:
		return "TCP and TLS"
	case tcp:
		return "TCP"
	}
	return "TLS"
}
