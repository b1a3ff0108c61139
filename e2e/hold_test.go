package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/natcheck/natcheck/lab"
)

// TestHoldLab builds one lab and keeps it up for manual exploration:
//
//	NATCHECK_LAB_HOLD=symmetric go test ./e2e -run TestHoldLab -v -timeout 0
//
// NATCHECK_LAB_UPNP=1 also runs miniupnpd on the router.
//
// It writes the namespace names to /tmp/natcheck-lab.env and tears the lab
// down when that file is deleted. It never runs otherwise.
func TestHoldLab(t *testing.T) {
	kind := os.Getenv("NATCHECK_LAB_HOLD")
	if kind == "" {
		t.Skip("set NATCHECK_LAB_HOLD=<kind> to hold a lab open for manual use")
	}
	var loss, delay int
	fmt.Sscan(os.Getenv("NATCHECK_LAB_LOSS"), &loss)
	fmt.Sscan(os.Getenv("NATCHECK_LAB_DELAY_MS"), &delay)
	l := lab.New(t, lab.Options{Kind: lab.Kind(kind), LossPercent: loss, DelayMs: delay,
		UPnP: os.Getenv("NATCHECK_LAB_UPNP") == "1"}) // miniupnpd on the router
	envFile := "/tmp/natcheck-lab.env"
	if f := os.Getenv("NATCHECK_LAB_ENV"); f != "" { // several labs held at once
		envFile = f
	}
	// NATCHECK_LAB_UDP_TIMEOUT=20s sets the router's conntrack UDP timeouts;
	// NATCHECK_LAB_IPV6=routed|nat66|nptv6 adds IPv6.
	if d, err := time.ParseDuration(os.Getenv("NATCHECK_LAB_UDP_TIMEOUT")); err == nil {
		l.SetUDPTimeout(d, d)
	}
	var v6 lab.IPv6
	if mode := os.Getenv("NATCHECK_LAB_IPV6"); mode != "" {
		v6 = l.AddIPv6(lab.IPv6Mode(mode))
	}
	env := fmt.Sprintf("CLIENT=%s\nROUTER=%s\nCARRIER=%s\nINET=%s\nPUBLIC_IP=%s\nCLIENT_IP=%s\nSERVER1=%s\nSERVER2=%s\n",
		l.Client, l.Router, l.Carrier, l.Internet, l.PublicIP, l.ClientIP, l.ServerIPs[0], l.ServerIPs[1])
	if v6.Mode != "" {
		env += fmt.Sprintf("CLIENT_IP6=%s\nPUBLIC_IP6=%s\nSERVER1_6=%s\nSERVER2_6=%s\n", v6.ClientIP, v6.PublicIP, v6.ServerIPs[0], v6.ServerIPs[1])
	}
	if err := os.WriteFile(envFile, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %s is up; namespaces in %s; delete that file to tear it down", kind, envFile)
	for {
		if _, err := os.Stat(envFile); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
