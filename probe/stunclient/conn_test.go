package stunclient

import (
	"testing"
	"time"
)

func TestReplyRTT(t *testing.T) {
	t0 := time.Now()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		sent  []time.Time
		at    time.Time
		rtt   time.Duration
		exact bool
	}{
		{[]time.Time{ms(0)}, ms(30), 30 * time.Millisecond, true},
		{[]time.Time{ms(0), ms(250)}, ms(260), 10 * time.Millisecond, false},
		// Read before the retransmission that the timer triggered.
		{[]time.Time{ms(0), ms(250)}, ms(249), 249 * time.Millisecond, true},
	}
	for _, tt := range tests {
		rtt, exact := replyRTT(tt.sent, tt.at)
		if rtt != tt.rtt || exact != tt.exact {
			t.Errorf("replyRTT(%v) = %v %v, want %v %v", tt.at.Sub(t0), rtt, exact, tt.rtt, tt.exact)
		}
	}
}
