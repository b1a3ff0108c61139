package stunclient

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pion/stun/v3"
)

// DefaultPort is the STUN port of RFC 8489 section 18.6, used when a server
// is given without one.
const DefaultPort = 3478

// Family is the IP address family a probe runs over.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Network returns the Go network name for UDP over f ("udp4" or "udp6").
func (f Family) Network(proto string) string {
	if f == IPv6 {
		return proto + "6"
	}
	return proto + "4"
}

// matches reports whether a is an address of family f.
func (f Family) matches(a netip.Addr) bool {
	a = a.Unmap()
	if f == IPv6 {
		return a.Is6()
	}
	return a.Is4()
}

// Server is a STUN server as the user named it.
type Server struct {
	Input string // the text it was parsed from, shown in reports
	Host  string // a name or an IP literal, without brackets
	Port  int
}

func (s Server) String() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// ErrBadServer is wrapped by every server-parsing error.
var ErrBadServer = errors.New("bad STUN server")

// ParseServer accepts "host", "host:port", "v6", "[v6]", "[v6]:port" and
// stun: URIs (RFC 7064). stuns: (TLS) is refused, since natcheck speaks
// STUN over UDP and TCP only.
func ParseServer(input string) (Server, error) {
	s := strings.TrimSpace(input)
	bad := func(why string) (Server, error) {
		return Server{}, fmt.Errorf("%w %s: %s", ErrBadServer, quoteClipped(input), why)
	}
	if s == "" {
		return bad("empty")
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "stuns:"):
		return bad("stuns: (STUN over TLS) is not supported")
	case strings.HasPrefix(lower, "turn:"), strings.HasPrefix(lower, "turns:"):
		return bad("a TURN URI is not a STUN server")
	case strings.HasPrefix(lower, "stun:") && !allDigits(s[len("stun:"):]):
		// "stun:3478" is the host "stun" at port 3478, not a URI for the
		// host "3478"; every other stun: text is a URI.
		u, err := stun.ParseURI(s)
		if err != nil {
			return bad(err.Error())
		}
		return finishServer(input, strings.Trim(u.Host, "[]"), u.Port, bad)
	}
	// A bare IPv6 literal has colons but no brackets: take it whole.
	if a, err := netip.ParseAddr(s); err == nil {
		return finishServer(input, a.String(), DefaultPort, bad)
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return finishServer(input, s[1:len(s)-1], DefaultPort, bad)
	}
	if !strings.Contains(s, ":") {
		return finishServer(input, s, DefaultPort, bad)
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return bad("want host, host:port or [IPv6]:port")
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return bad("port is not a number")
	}
	if port == 0 {
		return bad("port out of range 1-65535")
	}
	return finishServer(input, host, port, bad)
}

func finishServer(input, host string, port int, bad func(string) (Server, error)) (Server, error) {
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		return bad("port out of range 1-65535")
	}
	if host == "" {
		return bad("no host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" && !a.Is6() {
			return bad("zone on an IPv4 address")
		}
		host = a.Unmap().String()
	} else if !validHostname(host) {
		return bad("not a valid host name or IP address")
	}
	return Server{Input: strings.TrimSpace(input), Host: host, Port: port}, nil
}

// maxEcho is how much of a bad server's text an error repeats.
const maxEcho = 64

// quoteClipped quotes s for an error message, only its first maxEcho bytes
// (whole runes) and an ellipsis with its length when it is longer: a
// pasted file given as a server must not flood the error line.
func quoteClipped(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}

// validHostname checks RFC 1123 label syntax, so that typos fail as usage
// errors before any DNS query.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
			if !ok {
				return false
			}
		}
	}
	return true
}

// ParseServerList parses a comma-separated list, as found in the
// NATCHECK_SERVERS environment variable. Empty items are skipped.
func ParseServerList(list string) ([]Server, error) {
	var out []Server
	for _, f := range strings.Split(list, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		s, err := ParseServer(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

//go:embed servers.txt
var defaultServersText string

// DefaultServers returns the embedded list of well-known public servers.
// None of them is ever contacted by the tests.
func DefaultServers() []Server {
	var out []Server
	sc := bufio.NewScanner(strings.NewReader(defaultServersText))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if s, err := ParseServer(strings.Fields(line)[0]); err == nil {
			out = append(out, s)
		}
	}
	return out
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
