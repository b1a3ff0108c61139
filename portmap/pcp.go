package portmap

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/natcheck/natcheck/internal/tri"
)

// pcp tests PCP: ANNOUNCE (is there a server?), MAP for a socket of ours
// (external address and a mapping), then MAP with lifetime 0 (delete).
func (c *checker) pcp(ctx context.Context) {
	conn, err := dialGateway(c.gw, natpmpPort)
	if err != nil {
		c.fail(err)
		return
	}
	defer conn.Close()

	wctx, cancel := c.waitContext(ctx)
	ann, rtt, err := c.pcpDo(wctx, conn, pcpRequest{Opcode: pcpOpAnnounce, Client: c.gw.Local})
	cancel()
	c.res.Timings.Discover = rtt
	switch {
	case interrupted(ctx) != nil:
		c.fail(interrupted(ctx))
		return
	case errors.Is(err, errNATPMPAnswer), errors.Is(err, ErrRefused), errors.Is(err, ErrNoAnswer):
		c.res.Supported = tri.No
		c.fail(err)
		return
	case errors.As(err, new(*PCPResultError)):
		// A PCP server that does not like ANNOUNCE is still a PCP server:
		// go on to MAP.
		c.fail(fmt.Errorf("ANNOUNCE: %w", err))
	case err != nil:
		c.fail(err)
		return
	}
	// Any PCP answer, even an error result, shows a PCP server.
	c.res.Supported = tri.Yes
	c.res.Server = fmt.Sprintf("PCP version 2, epoch %ds", ann.Epoch)

	sock, err := c.testSocket()
	if err != nil {
		c.fail(err)
		return
	}
	defer sock.Close()
	req := pcpRequest{
		Opcode:       pcpOpMap,
		Lifetime:     c.lifetimeSeconds(),
		Client:       c.gw.Local,
		InternalPort: c.res.InternalPort,
		ExternalPort: c.res.InternalPort,
	}
	if _, err := rand.Read(req.Nonce[:]); err != nil {
		c.fail(err)
		return
	}
	// From here on a mapping may exist (the request may have arrived even
	// if its answer does not): delete it whatever happens next.
	defer c.pcpDelete(ctx, conn, req)

	wctx, cancel = c.waitContext(ctx)
	m, rtt, err := c.pcpDo(wctx, conn, req)
	cancel()
	c.res.Timings.Add = rtt
	if err == nil || errors.As(err, new(*PCPResultError)) {
		// Error responses carry the server's external address too
		// (miniupnpd fills it in even when it refuses the mapping).
		if m.ExternalIP.IsValid() && !m.ExternalIP.IsUnspecified() {
			c.res.ExternalIP = m.ExternalIP
		}
	}
	if err != nil {
		switch {
		case interrupted(ctx) != nil:
			err = interrupted(ctx)
		case errors.As(err, new(*PCPResultError)):
			c.res.MappingAdded = tri.No // refused; without an answer it stays unknown
		}
		c.fail(fmt.Errorf("MAP: %w", err))
		return
	}
	c.res.MappingAdded = tri.Yes
	c.res.ExternalPort = m.ExternalPort
	c.res.Lifetime = time.Duration(m.Lifetime) * time.Second
	c.hold(ctx)
}

// pcpDelete deletes the test mapping (RFC 6887 section 15: MAP with the same
// nonce, protocol and internal port, lifetime 0) on a context that outlives
// the caller's.
func (c *checker) pcpDelete(ctx context.Context, conn *net.UDPConn, req pcpRequest) {
	cctx, cancel := c.cleanupContext(ctx)
	defer cancel()
	req.Lifetime = 0
	_, rtt, err := c.pcpDo(cctx, conn, req)
	c.res.Timings.Delete = rtt
	c.deleted(ctx, err)
}

// pcpDo runs one PCP transaction. A response counts when it answers our
// opcode (and, for MAP, our nonce); a NAT-PMP answer ends it too. A
// non-zero result comes back as *PCPResultError with the parsed response.
func (c *checker) pcpDo(ctx context.Context, conn *net.UDPConn, req pcpRequest) (pcpResponse, time.Duration, error) {
	r, rtt, err := transact(ctx, conn, req.marshal(), parsePCPResponse, func(r pcpResponse) bool {
		return r.Opcode == req.Opcode && (req.Opcode != pcpOpMap || bytes.Equal(r.Nonce[:], req.Nonce[:]))
	})
	if err != nil {
		return r, rtt, err
	}
	if r.Result != 0 {
		return r, rtt, &PCPResultError{Code: r.Result}
	}
	return r, rtt, nil
}
