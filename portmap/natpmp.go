package portmap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// natpmp tests NAT-PMP with github.com/jackpal/go-nat-pmp: the external
// address (opcode 0), a UDP mapping for a socket of ours (opcode 1), then
// its deletion (the same request with lifetime 0, RFC 6886 section 3.4).
func (c *checker) natpmp(ctx context.Context) {
	timeout := c.o.Wait
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		c.fail(interrupted(ctx))
		return
	}
	// The library retransmits (250 ms doubling) until its timeout, but it
	// knows no context: each call runs in its own goroutine (goCall).
	client := natpmp.NewClientWithLocalAndTimeout(c.gw.Addr.AsSlice(), c.gw.Local.AsSlice(), timeout)

	start := time.Now()
	ext, err := goCall(client.GetExternalAddress).wait(ctx)
	c.res.Timings.Discover = time.Since(start)
	switch {
	case interrupted(ctx) != nil:
		c.fail(interrupted(ctx))
		return
	case err == nil:
		c.res.Supported = Yes
		c.res.Server = fmt.Sprintf("NAT-PMP, epoch %ds", ext.SecondsSinceStartOfEpoc)
		if a := netip.AddrFrom4(ext.ExternalIPAddress); !a.IsUnspecified() {
			c.res.ExternalIP = a
		}
	default:
		// A NAT-PMP result code is an answer from a NAT-PMP server (code 3
		// is a gateway without a public address); anything else is not.
		code, isResult := natpmpResultCode(err)
		c.res.Supported = TriOf(isResult && code != 1)
		if isResult {
			err = fmt.Errorf("external address: %w", natpmpError(err, timeout))
		} else {
			err = natpmpError(err, timeout)
		}
		c.fail(err)
		if !isResult || code == 1 {
			return
		}
	}

	sock, err := c.testSocket()
	if err != nil {
		c.fail(err)
		return
	}
	defer sock.Close()
	port := int(c.res.InternalPort)
	start = time.Now()
	add := goCall(func() (*natpmp.AddPortMappingResult, error) {
		return client.AddPortMapping("udp", port, port, int(c.lifetimeSeconds()))
	})
	// From here on a mapping may exist: delete it whatever happens next.
	defer c.natpmpDelete(ctx, client, add, port)
	m, err := add.wait(ctx)
	c.res.Timings.Add = time.Since(start)
	if err != nil {
		if interrupted(ctx) != nil {
			err = interrupted(ctx)
		} else if _, refused := natpmpResultCode(err); refused {
			c.res.MappingAdded = No // without an answer it stays unknown
		}
		c.fail(fmt.Errorf("mapping: %w", natpmpError(err, timeout)))
		return
	}
	c.res.MappingAdded = Yes
	c.res.ExternalPort = m.MappedExternalPort
	c.res.Lifetime = time.Duration(m.PortMappingLifetimeInSeconds) * time.Second
	c.hold(ctx)
}

// natpmpDelete waits for an add still in flight (the library would
// otherwise retransmit it after our deletion), then deletes the mapping of
// the internal port, on a context that outlives the caller's.
func (c *checker) natpmpDelete(ctx context.Context, client *natpmp.Client, add *call[*natpmp.AddPortMappingResult], port int) {
	cctx, cancel := c.cleanupContext(ctx)
	defer cancel()
	_, _ = add.wait(cctx)
	start := time.Now()
	_, err := goCall(func() (*natpmp.AddPortMappingResult, error) {
		// RFC 6886 section 3.4: lifetime 0 and external port 0 delete.
		return client.AddPortMapping("udp", port, 0, 0)
	}).wait(cctx)
	c.res.Timings.Delete = time.Since(start)
	c.deleted(ctx, err)
}

// natpmpResultCode extracts the result code from the library's error text
// ("Non-zero result code N ..."): the library has no typed error.
func natpmpResultCode(err error) (int, bool) {
	var code int
	if _, e := fmt.Sscanf(err.Error(), "Non-zero result code %d", &code); e != nil {
		return 0, false
	}
	return code, true
}

// natpmpError rewrites the library's errors in the words of this package.
func natpmpError(err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case strings.Contains(err.Error(), "Timed out"):
		return errNoAnswer{wait: timeout, tries: triesWithin(timeout)}
	}
	if code, ok := natpmpResultCode(err); ok {
		return fmt.Errorf("NAT-PMP result %d (%s)", code, natpmpResultNames[code])
	}
	return err
}

// RFC 6886 section 3.5.
var natpmpResultNames = map[int]string{
	1: "unsupported version", 2: "not authorized/refused",
	3: "network failure: the gateway has no external address", 4: "out of resources",
	5: "unsupported opcode",
}

// triesWithin is how many transmissions a 250 ms doubling schedule makes
// within d.
func triesWithin(d time.Duration) int {
	n := 0
	for t, rto := time.Duration(0), firstRTO; t < d; t, rto = t+rto, rto*2 {
		n++
	}
	return n
}

// call is a blocking function running in its own goroutine, for libraries
// that take no context: the caller may stop waiting, and cleanup can still
// wait for it to finish.
type call[T any] struct {
	v    T
	err  error
	done chan struct{}
}

func goCall[T any](f func() (T, error)) *call[T] {
	c := &call[T]{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.v, c.err = f()
	}()
	return c
}

// wait returns f's result, or ctx's error if ctx ends first.
func (c *call[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
