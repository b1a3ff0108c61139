package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/internal/tri"
	"github.com/natcheck/natcheck/portmap"
	"github.com/natcheck/natcheck/probe"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// sampleResult is a report whose type test found a port-restricted cone
// and whose TCP check failed.
func sampleResult() *diagnose.Result {
	pub := netip.MustParseAddrPort("203.0.113.2:40000")
	tr := &probe.TypeResult{Primary: netip.MustParseAddrPort("203.0.113.10:3478")}
	tr.Verdict = nat.Verdict{Type: nat.TypePortRestrictedCone, Mapping: nat.EndpointIndependent,
		Filtering: nat.AddressAndPortDependent, Public: pub, RFC5780: nat.RFC5780Verified, Outlook: "Direct connections work with most peers."}
	return &diagnose.Result{
		Type: tr,
		Servers: []probe.ServerCheck{{Address: netip.MustParseAddrPort("203.0.113.10:3478"), Replied: true,
			RTT: 20 * time.Millisecond, Mapped: pub, RFC5780: nat.RFC5780Verified}},
		Local: diagnose.Local{Interfaces: []nat.HostAddr{{Addr: netip.MustParseAddr("192.168.1.2"), Iface: "eth0"}}},
		Checks: []diagnose.Check{
			{Name: diagnose.CheckType, Status: diagnose.StatusDone, Note: "port-restricted-cone", Elapsed: 300 * time.Millisecond},
			{Name: diagnose.CheckPortmap, Status: diagnose.StatusSkipped, Note: "not run (--no-portmap)"},
			{Name: diagnose.CheckTCP, Status: diagnose.StatusFailed, Note: "no STUN server answered over TCP"},
			{Name: diagnose.CheckServers, Status: diagnose.StatusDone, Note: "1 of 1 answered, 1 with verified RFC 5780 support"},
			{Name: diagnose.CheckLocal, Status: diagnose.StatusDone},
		},
		Elapsed: 310 * time.Millisecond,
	}
}

func sampleInput() FullInput {
	s, _ := stunclient.ParseServer("203.0.113.10")
	return FullInput{Result: sampleResult(), Servers: []stunclient.Server{s}, Version: "v1.2.3",
		At: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func TestFullJSONKeepsTypeFieldsAtTopLevel(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, NewFullJSON(sampleInput())); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"schema_version": float64(SchemaVersion), "type": "port-restricted-cone",
		"mapping": "endpoint-independent", "filtering": "address-and-port-dependent",
		"public_ip": "203.0.113.2", "natcheck_version": "v1.2.3", "created_at": "2026-11-25T12:00:00Z",
	} {
		if m[key] != want {
			t.Errorf("%s = %v, want %v", key, m[key], want)
		}
	}
	for _, key := range []string{"port_mapping", "tcp", "binding_lifetime", "ipv6"} {
		if v, ok := m[key]; !ok || v != nil {
			t.Errorf("%s = %v, want null (the check did not produce findings)", key, v)
		}
	}
	if checks := m["checks"].([]any); len(checks) != 5 {
		t.Errorf("checks: %v", checks)
	}
	if sc := m["server_checks"].([]any); len(sc) != 1 || sc[0].(map[string]any)["rfc5780"] != "verified" {
		t.Errorf("server_checks: %v", sc)
	}
}

func TestFullTextVerdictFirstThenSections(t *testing.T) {
	var buf bytes.Buffer
	if err := FullText(&buf, sampleInput(), false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	first, _, _ := strings.Cut(out, "\n")
	if first != "port-restricted-cone (mapping endpoint-independent, filtering address-and-port-dependent)" {
		t.Errorf("first line %q", first)
	}
	for _, want := range []string{
		"== NAT type (IPv4) ==", "== Port mapping (UPnP, NAT-PMP, PCP) ==\nnot run (--no-portmap)",
		"STUN over TCP", "failed: no STUN server answered over TCP",
		"1 of 1 answered, 1 with verified RFC 5780 support", "eth0", "natcheck v1.2.3, 2026-11-25T12:00:00Z",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestFullMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := FullMarkdown(&buf, sampleInput(), false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"# natcheck report\n", "**port-restricted-cone (mapping endpoint-independent, filtering address-and-port-dependent)**",
		"| public address | 203.0.113.2:40000 |", "| STUN over TCP | failed: no STUN server answered over TCP |",
		"## NAT type (IPv4)\n\n```\n", "| tcp | failed |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "```")%2 != 0 {
		t.Error("unbalanced code fences")
	}
}

func TestFullWithoutTypeResultIsUnknown(t *testing.T) {
	in := sampleInput()
	in.Result.Type = nil
	in.Result.Checks[0] = diagnose.Check{Name: diagnose.CheckType, Status: diagnose.StatusFailed, Note: "no STUN server answered"}
	j := NewFullJSON(in)
	if j.Type != nat.TypeUnknown || j.Mapping != nat.MappingUnknown || len(j.Evidence) != 1 {
		t.Errorf("type JSON without a result: %+v", j.TypeJSON)
	}
	var buf bytes.Buffer
	FullText(&buf, in, false)
	if !strings.HasPrefix(buf.String(), "unknown: failed: no STUN server answered\n") {
		t.Errorf("headline: %q", strings.SplitN(buf.String(), "\n", 2)[0])
	}
}

func TestMarkdownEscapesTableCells(t *testing.T) {
	if got := mdCell("a|b *c* d_e\nf"); got != `a\|b \*c\* d\_e f` {
		t.Errorf("mdCell = %q", got)
	}
}

// A gateway that answers but refuses every mapping must not read as "yes".
func TestPortmapHeadlineSaysRefused(t *testing.T) {
	rep := &portmap.Report{Results: []portmap.Result{
		{Protocol: portmap.UPnP, Supported: tri.Yes, MappingAdded: tri.No},
		{Protocol: portmap.NATPMP, Supported: tri.Yes, MappingAdded: tri.Yes},
		{Protocol: portmap.PCP, Supported: tri.No},
	}}
	var buf bytes.Buffer
	if err := PortmapText(&buf, PortmapInput{Report: rep}, false); err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(buf.String(), "\n")
	if !strings.HasPrefix(first, "port mapping: UPnP yes (mapping refused), NAT-PMP yes, PCP no;") {
		t.Errorf("headline %q", first)
	}
}

// A failure made of several errors (errors.Join puts newlines between
// them) keeps the verdict on the first line, the Markdown bold on one line
// and JSON notes free of newlines.
func TestFullJoinedErrorStaysOnOneLine(t *testing.T) {
	in := sampleInput()
	in.Result.Type = nil
	note := "no STUN server answered (no server name resolved: resolve a.invalid: no IPv4 address\nresolve b.invalid: no IPv4 address\nresolve c.invalid: no IPv4 address)"
	in.Result.Checks[0] = diagnose.Check{Name: diagnose.CheckType, Status: diagnose.StatusFailed, Note: note}
	want := "unknown: failed: no STUN server answered (no server name resolved: resolve a.invalid: no IPv4 address; resolve b.invalid: no IPv4 address; resolve c.invalid: no IPv4 address)"
	var text, md bytes.Buffer
	FullText(&text, in, false)
	if first, _, _ := strings.Cut(text.String(), "\n"); first != want {
		t.Errorf("text headline %q, want %q", first, want)
	}
	FullMarkdown(&md, in, false)
	if !strings.Contains(md.String(), "\n**"+mdEscape(want)+"**\n") {
		t.Errorf("markdown verdict not one bold line:\n%s", md.String())
	}
	j := NewFullJSON(in)
	for _, c := range j.Checks {
		if strings.Contains(c.Note, "\n") {
			t.Errorf("JSON note of %s has a newline: %q", c.Name, c.Note)
		}
	}
	for _, e := range j.Evidence {
		if strings.Contains(e, "\n") {
			t.Errorf("JSON evidence has a newline: %q", e)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                               "plain",
		"a\nb\n":                              "a; b",
		"a\r\n\n  b  \n\tc":                   "a; b; c",
		"x\n\nDid you mean this?\n\twhoami\n": "x; Did you mean this? whoami",
		"errors:\none":                        "errors: one",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
