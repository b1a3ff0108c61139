package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestDisabledWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, Options{})
	c := d.Start("mapping")
	c.Done("endpoint-independent")
	d.Start("filtering").Fail("timeout")
	d.Stop()
	if buf.Len() != 0 {
		t.Fatalf("a disabled display wrote %q", buf.String())
	}
}

func TestEnabledShowsEachStateAndErasesAtStop(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, Options{Enabled: true})
	d.Start("mapping").Done("endpoint-independent")
	d.Start("filtering").Fail("no server supports RFC 5780")
	d.Start("hairpinning").Skip("not tested")
	pending := d.Start("lifetime")
	out := buf.String()
	for _, want := range []string{"ok mapping  endpoint-independent", "!! filtering  no server supports RFC 5780", "-- hairpinning  not tested", "lifetime"} {
		if !strings.Contains(out, want) {
			t.Errorf("display lacks %q:\n%q", want, out)
		}
	}
	if strings.Contains(out, green) || strings.Contains(out, red) || strings.Contains(out, reset) {
		t.Error("colour used although Color is off")
	}
	d.Stop()
	if !strings.HasSuffix(buf.String(), "\x1b[4A\r\x1b[J") {
		t.Errorf("Stop must move up over the 4 lines and erase them; output ends %q", tail(buf.String(), 20))
	}
	pending.Done("late") // after Stop: must not panic or draw
}

func TestColourOnlyWhenAsked(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, Options{Enabled: true, Color: true})
	d.Start("mapping").Done("ok")
	d.Stop()
	if !strings.Contains(buf.String(), green) {
		t.Errorf("no colour in %q", buf.String())
	}
}

func TestFinishTwiceKeepsFirstResult(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, Options{Enabled: true})
	c := d.Start("x")
	c.Done("first")
	c.Fail("second")
	d.Stop()
	if c.state != Done || c.note != "first" {
		t.Errorf("state %v note %q, want Done first", c.state, c.note)
	}
}

func tail(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[len(s)-n:]
}

// On a narrow terminal lines are cut, never wrapped: a wrapped line would
// break redrawing in place.
func TestLinesFitTheTerminalWidth(t *testing.T) {
	var buf bytes.Buffer
	d := New(&buf, Options{Enabled: true, Width: 30})
	d.Start("servers").Done("1 of 2 answered, 1 with verified RFC 5780 support")
	d.Stop()
	for _, line := range strings.Split(buf.String(), "\n") {
		visible := line
		if i := strings.LastIndex(line, "\x1b[2K"); i >= 0 {
			visible = line[i+len("\x1b[2K"):]
		}
		if len(visible) >= 30 {
			t.Errorf("line %q is %d columns on a 30-column terminal", visible, len(visible))
		}
	}
	if !strings.Contains(buf.String(), "...") {
		t.Errorf("no cut marked in %q", buf.String())
	}
}
