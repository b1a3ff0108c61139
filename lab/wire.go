package lab

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/natcheck/natcheck/internal/testutil"
)

// startWire runs labwire in the wire namespace: it bridges the edge router's
// WAN (veth end wire0) and the internet (veth end wire1) holding every frame for
// DelayMs. The kernel has no netem, so this relay is the lab's delay line.
func (l *Lab) startWire() error {
	return l.startWireIn(l.Wire, time.Duration(l.Options.DelayMs)*time.Millisecond)
}

// startWireIn runs labwire in the wire namespace ns, between its wire0 and
// wire1, holding every frame for delay.
func (l *Lab) startWireIn(ns string, delay time.Duration) error {
	bin, err := buildOnce("labwire", "./lab/cmd/labwire")
	if err != nil {
		return err
	}
	if err := l.ip(ns, "link set dev wire0 promisc on up\nlink set dev wire1 promisc on up"); err != nil {
		return err
	}
	cmd := l.Command(context.Background(), ns, bin, "-a", "wire0", "-b", "wire1", "-delay", delay.String())
	dieWithParent(cmd)
	// labwire also exits when its stdin closes, i.e. when this process dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	errBuf := &testutil.SyncBuffer{}
	cmd.Stderr = errBuf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start labwire: %w", err)
	}
	l.t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if s := errBuf.String(); s != "" && l.t.Failed() {
			l.t.Logf("labwire stderr:\n%s", s)
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			return fmt.Errorf("labwire did not start: %q %s", line, errBuf.String())
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("labwire not ready after 10s: %s", errBuf.String())
	}
	return nil
}
