package server

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/natcheck/natcheck/rendezvous"
)

// counters belong to one reader goroutine (or to all TCP connections), so
// the hot path increments an uncontended cache line; a scrape sums them.
type counters struct {
	received atomic.Uint64 // datagrams or stream messages
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	replies  [numReplyKinds]atomic.Uint64
	drops    [numDropReasons]atomic.Uint64
	_        [64]byte // no false sharing with the next worker's counters
}

// drop counts a packet that got no answer.
func (c *counters) drop(d dropReason) { c.drops[d].Add(1) }

// sent counts an answer of n bytes.
func (c *counters) sent(k replyKind, n int) {
	c.replies[k].Add(1)
	c.bytesOut.Add(uint64(n))
}

// Totals is a snapshot of the server's counters, summed over workers.
type Totals struct {
	Received, BytesIn, BytesOut uint64
	Replies                     map[string]uint64 // by kind: success, error_400, error_420
	Drops                       map[string]uint64 // by reason
}

func (s *Server) sum(cs []*counters) Totals {
	t := Totals{Replies: map[string]uint64{}, Drops: map[string]uint64{}}
	for _, c := range cs {
		t.Received += c.received.Load()
		t.BytesIn += c.bytesIn.Load()
		t.BytesOut += c.bytesOut.Load()
		for k := range c.replies {
			t.Replies[replyNames[k]] += c.replies[k].Load()
		}
		for d := dropReason(1); d < numDropReasons; d++ {
			t.Drops[dropNames[d]] += c.drops[d].Load()
		}
	}
	return t
}

// UDPTotals and TCPTotals snapshot the counters per transport.
func (s *Server) UDPTotals() Totals { return s.sum(s.udpCounters) }
func (s *Server) TCPTotals() Totals { return s.sum([]*counters{s.tcpCounters}) }

// WriteMetrics writes the Prometheus text exposition of the server's
// counters, then the process and Go runtime metrics.
func (s *Server) WriteMetrics(w io.Writer) {
	for _, tr := range []struct {
		name string
		t    Totals
	}{{"udp", s.UDPTotals()}, {"tcp", s.TCPTotals()}} {
		metrics.WriteCounterUint64(w, fmt.Sprintf(`natcheck_serve_requests_received_total{transport=%q}`, tr.name), tr.t.Received)
		metrics.WriteCounterUint64(w, fmt.Sprintf(`natcheck_serve_received_bytes_total{transport=%q}`, tr.name), tr.t.BytesIn)
		metrics.WriteCounterUint64(w, fmt.Sprintf(`natcheck_serve_sent_bytes_total{transport=%q}`, tr.name), tr.t.BytesOut)
		for _, k := range replyNames {
			metrics.WriteCounterUint64(w, fmt.Sprintf(`natcheck_serve_responses_sent_total{transport=%q,kind=%q}`, tr.name, k), tr.t.Replies[k])
		}
		for _, d := range dropNames[1:] {
			metrics.WriteCounterUint64(w, fmt.Sprintf(`natcheck_serve_requests_dropped_total{transport=%q,reason=%q}`, tr.name, d), tr.t.Drops[d])
		}
	}
	metrics.WriteGaugeUint64(w, "natcheck_serve_tcp_connections_open", uint64(s.tcpOpen.Load()))
	metrics.WriteCounterUint64(w, `natcheck_serve_tcp_connections_total{result="accepted"}`, s.tcpAccepted.Load())
	metrics.WriteCounterUint64(w, `natcheck_serve_tcp_connections_total{result="rejected"}`, s.tcpRejected.Load())
	sources := 0
	if s.lim != nil {
		sources = s.lim.size()
	}
	metrics.WriteGaugeUint64(w, "natcheck_serve_ratelimit_sources", uint64(sources))
	if s.rdv != nil {
		st := s.rdv.Stats(s.now())
		metrics.WriteGaugeUint64(w, "natcheck_serve_rendezvous_codes_active", uint64(st.Codes))
		metrics.WriteGaugeUint64(w, "natcheck_serve_rendezvous_blobs_held", uint64(st.Blobs))
		metrics.WriteGaugeUint64(w, "natcheck_serve_rendezvous_bytes_held", uint64(st.Bytes))
		metrics.WriteCounterUint64(w, "natcheck_serve_rendezvous_blobs_stored_total", st.Stored)
		metrics.WriteCounterUint64(w, "natcheck_serve_rendezvous_codes_expired_total", st.Expired)
		metrics.WriteCounterUint64(w, "natcheck_serve_rendezvous_leaves_total", st.Left)
		for i, name := range rendezvous.RefusalNames {
			metrics.WriteCounterUint64(w, fmt.Sprintf(`natcheck_serve_rendezvous_refused_total{reason=%q}`, name), st.Refused[i])
		}
	}
	metrics.WriteProcessMetrics(w)
}

func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.WriteMetrics(w)
	})
	return mux
}
