package cmd

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natcheck/natcheck/internal/stuntest"
	"github.com/natcheck/natcheck/probe/peer"
	"github.com/natcheck/natcheck/probe/stunclient"
)

// syncBuffer is a bytes.Buffer safe for one writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func peerDeps(errOut *syncBuffer, out *bytes.Buffer) *Deps {
	return &Deps{In: strings.NewReader(""), Out: out, ErrOut: errOut, Getenv: func(string) string { return "" },
		DefaultServers: func() []stunclient.Server { return nil }}
}

// waitLine waits for a line starting with prefix on s.
func waitLine(t *testing.T, s *syncBuffer, prefix string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(s.String(), "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				return v
			}
		}
	}
	t.Fatalf("no %q line in %q", prefix, s.String())
	return ""
}

// TestPeerTickets runs both sides as natcheck commands in one process:
// A prints its ticket, B takes it and prints its answer, A reads the
// answer from --answer; they connect over host candidates (exit 0).
func TestPeerTickets(t *testing.T) {
	answer := filepath.Join(t.TempDir(), "answer.txt")
	var aErr, bErr syncBuffer
	var aOut, bOut bytes.Buffer
	ctx := context.Background()
	codes := make(chan int, 1)
	srv := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	flags := []string{"peer", "-4", "--loopback", "--pings", "5", "-s", srv.Addr.String()}
	go func() { codes <- Execute(ctx, append(flags, "--answer", answer), peerDeps(&aErr, &aOut)) }()
	ticket := waitLine(t, &aErr, "ticket: ")
	bcode := make(chan int, 1)
	go func() { bcode <- Execute(ctx, append(flags, ticket), peerDeps(&bErr, &bOut)) }()
	ans := waitLine(t, &bErr, "answer: ")
	if err := os.WriteFile(answer, []byte(ans+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, b := <-codes, <-bcode; a != ExitOK || b != ExitOK {
		t.Fatalf("exit codes %d, %d\nA: %s%s\nB: %s%s", a, b, aOut.String(), aErr.String(), bOut.String(), bErr.String())
	}
	for _, out := range []string{aOut.String(), bOut.String()} {
		if !strings.HasPrefix(out, "direct: host ") || !strings.Contains(out, "0/5 lost") {
			t.Errorf("output %q", out)
		}
	}
}

// TestPeerFiltered: the answer names a peer that never answers (its
// candidates are unreachable): A ends within --timeout, failed, exit 3.
func TestPeerFiltered(t *testing.T) {
	answer := filepath.Join(t.TempDir(), "answer.txt")
	srv := stuntest.Start(t, "127.0.0.1", stuntest.Behaviour{})
	var aErr syncBuffer
	var aOut bytes.Buffer
	codes := make(chan int, 1)
	go func() {
		codes <- Execute(context.Background(), []string{"peer", "-4", "--loopback", "--pings", "5", "-s", srv.Addr.String(),
			"--timeout", "1s", "--answer", answer, "--json"}, peerDeps(&aErr, &aOut))
	}()
	tk, err := peer.DecodeTicket(waitLine(t, &aErr, "ticket: "))
	if err != nil {
		t.Fatal(err)
	}
	tk.Answer = true
	tk.Ufrag, tk.Pwd = "filteredpeer", "filteredpeerpassword0123"
	for i := range tk.Candidates {
		tk.Candidates[i].Addr = netip.AddrPortFrom(tk.Candidates[i].Addr.Addr(), 9) // discard: nobody answers there
	}
	s, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := os.WriteFile(answer, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code := <-codes
	took := time.Since(start)
	if code != ExitNoAnswer {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitNoAnswer, aOut.String(), aErr.String())
	}
	if took > 3*time.Second {
		t.Errorf("took %v with --timeout 1s", took)
	}
	for _, want := range []string{`"outcome": "failed"`, `"selected_pair": null`, `"role": "controlling"`} {
		if !strings.Contains(aOut.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, aOut.String())
		}
	}
	t.Logf("failed after %v", took)
}

func TestPeerUsage(t *testing.T) {
	for _, args := range [][]string{
		{"peer", "--via", "rdv.example.net"},
		{"peer", "not-a-ticket!"},
		{"peer", "--pings", "0"},
		{"peer", "AQ", "extra"},
	} {
		var e syncBuffer
		var o bytes.Buffer
		if code := Execute(context.Background(), args, peerDeps(&e, &o)); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, e.String())
		} else if strings.Count(e.String(), "\n") != 1 {
			t.Errorf("%v: not one line: %q", args, e.String())
		}
	}
}
