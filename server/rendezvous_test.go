package server

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/natcheck/natcheck/rendezvous"
)

// rdvRequest is a rendezvous put (no cookie yet) with a blob of the
// smallest sealed size, padded to pad bytes: see package rendezvous for
// the layout.
func rdvRequest(pad int) []byte {
	b := []byte{0xD7, 'n', 'r', 'v', 1, 1, 0, 0}
	b = append(b, make([]byte, 8+16+16)...) // txid, cookie, lookup key
	b = binary.BigEndian.AppendUint16(b, rendezvous.Overhead)
	b = append(b, make([]byte, rendezvous.Overhead)...)
	for len(b) < pad {
		b = append(b, 0)
	}
	return b
}

func TestHandleRendezvousRoute(t *testing.T) {
	out := make([]byte, maxResponse)
	req := rdvRequest(0)
	on := &handler{fam: &testFamily, rdv: rendezvous.NewStore(rendezvous.StoreConfig{})}
	off := &handler{fam: &testFamily}
	for name, h := range map[string]*handler{"on": on, "off": off} {
		rep := h.handle(req, client, 1, false, 1, out)
		if rep.n == 0 || rep.n > len(req) || rep.kind != replyRendezvous || rep.from != 1 || rep.to != client {
			t.Errorf("%s: %+v", name, rep)
		}
		if !rendezvous.IsMessage(out[:rep.n]) {
			t.Errorf("%s: reply is not a rendezvous message", name)
		}
		// Never over TCP: the stream path is STUN only.
		if rep := h.handle(req, client, 1, true, 1, out); rep.n != 0 || rep.drop != dropNotSTUN {
			t.Errorf("%s over TCP: %+v", name, rep)
		}
		// Malformed rendezvous datagrams are not answered.
		if rep := h.handle(req[:len(req)-1], client, 1, false, 1, out); rep.n != 0 || rep.drop != dropMalformed {
			t.Errorf("%s, truncated: %+v", name, rep)
		}
		big := rdvRequest(rendezvous.MaxMessage + 1)
		if rep := h.handle(big, client, 1, false, 1, out); rep.n != 0 || rep.drop != dropTooLarge {
			t.Errorf("%s, oversized: %+v", name, rep)
		}
	}
}

// TestHandleRendezvousRateLimit: rendezvous requests draw on the same
// per-source buckets as Binding requests.
func TestHandleRendezvousRateLimit(t *testing.T) {
	h := &handler{fam: &testFamily, lim: newLimiter(4, 20), rdv: rendezvous.NewStore(rendezvous.StoreConfig{})} // per port: burst 2
	out := make([]byte, maxResponse)
	req := rdvRequest(0)
	for i, want := range []dropReason{dropNone, dropNone, dropRateLimited} {
		if rep := h.handle(req, client, 0, false, 1, out); rep.drop != want {
			t.Fatalf("request %d: %v, want %v", i, rep.drop, want)
		}
	}
	// The port's bucket is shared with STUN.
	if rep := h.handle(buildReq(t), client, 0, false, 1, out); rep.drop != dropRateLimited {
		t.Fatalf("binding after rendezvous burst: %v", rep.drop)
	}
}

// TestHandleSTUNStillBounded: the receive buffer grew for rendezvous
// blobs; STUN keeps its 2048-byte bound on requests and answers.
func TestHandleSTUNStillBounded(t *testing.T) {
	h := &handler{fam: &testFamily, software: "natcheck"}
	out := make([]byte, maxResponse)
	big := buildReq(t, rawAttr(attrPadding, make([]byte, maxSTUN-headerSize-4+4)))
	if rep := h.handle(big, client, 0, true, 1, out); rep.drop != dropTooLarge {
		t.Fatalf("%d-byte STUN request: %+v", len(big), rep)
	}
	ok := buildReq(t, rawAttr(attrPadding, make([]byte, maxSTUN-headerSize-4)))
	rep := h.handle(ok, client, 0, true, 1, out)
	if rep.n == 0 || rep.n > maxSTUN {
		t.Fatalf("%d-byte STUN request: %d-byte answer", len(ok), rep.n)
	}
	if bytes.HasPrefix(out, []byte{0xD7}) {
		t.Fatal("STUN answer looks like rendezvous")
	}
}
