package tri

import (
	"encoding/json"
	"testing"
)

func TestJSON(t *testing.T) {
	b, err := json.Marshal([]Bool{Yes, No, Unknown})
	if err != nil || string(b) != "[true,false,null]" {
		t.Fatalf("%s %v", b, err)
	}
	var back []Bool
	if err := json.Unmarshal(b, &back); err != nil || back[0] != Yes || back[1] != No || back[2] != Unknown {
		t.Fatalf("%v %v", back, err)
	}
}

func TestString(t *testing.T) {
	for b, want := range map[Bool]string{Yes: "yes", No: "no", Unknown: "unknown", Of(true): "yes", Of(false): "no"} {
		if got := b.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", b, got, want)
		}
	}
}
