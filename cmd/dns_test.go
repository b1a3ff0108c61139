package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/nat"
	"github.com/natcheck/natcheck/probe/stunclient"
	"github.com/natcheck/natcheck/report"
)

// executeDNS runs natcheck with res looking up every server name: no test
// touches the host's DNS.
func executeDNS(t *testing.T, res stunclient.Resolver, args ...string) (stdout, stderr string, code int, took time.Duration) {
	t.Helper()
	var out, errOut bytes.Buffer
	d := testDeps(&out, &errOut, nil)
	d.Resolver = res
	start := time.Now()
	code = Execute(context.Background(), args, d)
	return out.String(), errOut.String(), code, time.Since(start)
}

// Offline: every server is a name and DNS never answers. One line says
// so, exit 3, well before --timeout.
func TestNoNameResolvesExits3WithCause(t *testing.T) {
	silent := stuntest.SilentResolver(t)
	for _, command := range []string{"whoami", "type", "tcp"} {
		out, errOut, code, took := executeDNS(t, silent, command, "--timeout", "1s", "-s", "stun1.hangs.test", "-s", "stun2.hangs.test")
		want := "natcheck: DNS could not resolve any server name: is this host offline? (stun1.hangs.test: DNS gave no answer within 500ms; stun2.hangs.test: DNS gave no answer within 500ms)\n"
		if code != ExitNoAnswer || out != "" || errOut != want {
			t.Errorf("%s: code %d stdout %q\nstderr %q\nwant   %q", command, code, out, errOut, want)
		}
		if took > 900*time.Millisecond {
			t.Errorf("%s: took %v, want the lookups' 500ms", command, took)
		}
	}
	nx := stuntest.DNSResolver(t, nil)
	_, errOut, code, _ := executeDNS(t, nx, "type", "-s", "no-such-host.invalid")
	want := "natcheck: DNS could not resolve any server name (no-such-host.invalid: no such host (DNS says the name does not exist))\n"
	if code != ExitNoAnswer || errOut != want {
		t.Errorf("NXDOMAIN: code %d\nstderr %q\nwant   %q", code, errOut, want)
	}
}

// A dead literal beside a name that does not exist: exit 3, and the line
// names the DNS cause besides the silence.
func TestTypeNoAnswerNamesUnresolvedServer(t *testing.T) {
	dead := stuntest.Dead(t, "127.0.0.1")
	_, errOut, code, _ := executeDNS(t, stuntest.DNSResolver(t, nil), "type", "--timeout", "400ms", "-s", dead.String(), "-s", "no-such-host.invalid")
	if code != ExitNoAnswer || !strings.Contains(errOut, "1 not resolved: no-such-host.invalid: no such host") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("code %d stderr %q", code, errOut)
	}
}

// A hanging name beside two literal servers: type answers with the
// literals, without waiting for the lookup (its deadline is 1.5 s of the
// default 3 s).
func TestTypeHangingNameBesideLiterals(t *testing.T) {
	srv := serveLoopback(t)
	plain := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	out, errOut, code, took := executeDNS(t, stuntest.SilentResolver(t), "type", "--json",
		"-s", "stun.hangs.test", "-s", srv.String(), "-s", plain.Addr.String())
	if code != ExitOK || errOut != "" {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	var got report.TypeJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Type != nat.TypeOpenInternet {
		t.Errorf("type %s, want %s", got.Type, nat.TypeOpenInternet)
	}
	if took > 1400*time.Millisecond {
		t.Errorf("took %v: the hanging lookup held the run", took)
	}
}

// report's type check succeeds too with a hanging name in the list.
func TestReportHangingNameBesideLiteral(t *testing.T) {
	srv := serveLoopback(t)
	out, errOut, code, _ := executeDNS(t, stuntest.SilentResolver(t), "report", "--json", "--no-portmap", "--timeout", "3s",
		"-s", "stun.hangs.test", "-s", srv.String())
	if code != ExitOK {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	var got report.FullJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, c := range got.Checks {
		if c.Name == diagnose.CheckType && c.Status != diagnose.StatusDone {
			t.Errorf("nat-type check %s: %s", c.Status, c.Note)
		}
	}
}
