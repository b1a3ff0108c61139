package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/natcheck/natcheck/probe/lifetime"
	"github.com/natcheck/natcheck/probe/stunclient"
)

func TestLifetimeLine(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		l    lifetime.Result
		want string
	}{
		{lifetime.Result{Result: lifetime.Measured, Lower: 28 * s, Upper: 32 * s},
			"UDP mapping lifetime: about 30s (alive after 28.00 s idle, gone after 32.00 s)"},
		{lifetime.Result{Result: lifetime.LongerThanMax, Lower: 120 * s},
			"UDP mapping lifetime: longer than 120.00 s (still alive at the longest idle time probed)"},
		{lifetime.Result{Result: lifetime.ShorterThanMin, Upper: s},
			"UDP mapping lifetime: shorter than 1.00 s (gone at the shortest idle time probed)"},
		{lifetime.Result{Result: lifetime.Unknown, Reason: "no server honours RESPONSE-PORT"},
			"UDP mapping lifetime: unknown (no server honours RESPONSE-PORT)"},
	} {
		if got := LifetimeLine(&tc.l); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// Bounds that were not found are null, not 0: 0 would read as "expires at once".
func TestLifetimeJSONKeepsMissingBoundsNull(t *testing.T) {
	l := &lifetime.Result{Family: stunclient.IPv4, Result: lifetime.LongerThanMax, Lower: time.Minute,
		Probes: []lifetime.Probe{{Round: 1, Target: time.Minute, Idle: time.Minute, State: lifetime.ProbeAlive},
			{Round: 1, Target: 2 * time.Minute, State: lifetime.ProbeSkipped}}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, NewLifetimeJSON(l)); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["upper_ms"] != nil || m["estimate_ms"] != nil || m["lower_ms"] != 60000.0 || m["schema_version"] != 1.0 {
		t.Errorf("bounds: %v %v %v", m["lower_ms"], m["upper_ms"], m["estimate_ms"])
	}
	probes := m["probes"].([]any)
	if probes[1].(map[string]any)["idle_ms"] != nil {
		t.Errorf("a skipped probe has no idle time: %v", probes[1])
	}
	var text bytes.Buffer
	if err := LifetimeText(&text, l, true); err != nil || !strings.Contains(text.String(), "skipped") {
		t.Errorf("verbose text lacks probes: %q %v", text.String(), err)
	}
}
