package portmap

import (
	"context"
	"errors"
	"fmt"
	"github.com/natcheck/natcheck/internal/tri"
	"net"
	"time"
)

// natpmpClient speaks NAT-PMP (RFC 6886) to one gateway over a socket
// connected to its port 5351 (dialGateway), so that only the gateway's
// answers are read. Each call retransmits with RFC 6886's schedule (250 ms,
// doubling) until it has an answer or ctx ends; without an answer it
// returns an error matching ErrNoAnswer when ctx's deadline passed, ctx's
// error when it was cancelled. A non-zero result code comes back as
// *NATPMPResultError with the parsed response; an answer in PCP's version
// as errPCPAnswer; ICMP port unreachable as ErrRefused.
type natpmpClient struct{ conn *net.UDPConn }

// ExternalAddress asks for the gateway's external address (opcode 0).
func (c natpmpClient) ExternalAddress(ctx context.Context) (natpmpResponse, time.Duration, error) {
	return c.do(ctx, natpmpRequest{Opcode: natpmpOpExternalAddr})
}

// Map asks for a mapping of the internal port (opcode 1 for UDP, 2 for
// TCP), suggesting an external port (0: no preference), for lifetime
// seconds.
func (c natpmpClient) Map(ctx context.Context, op uint8, internal, external uint16, lifetime uint32) (natpmpResponse, time.Duration, error) {
	if op != natpmpOpMapUDP && op != natpmpOpMapTCP {
		return natpmpResponse{}, 0, fmt.Errorf("NAT-PMP: opcode %d is not a mapping", op)
	}
	return c.do(ctx, natpmpRequest{Opcode: op, InternalPort: internal, ExternalPort: external, Lifetime: lifetime})
}

// Unmap deletes the mapping of the internal port: RFC 6886 section 3.4, a
// mapping request with lifetime 0 and suggested external port 0.
func (c natpmpClient) Unmap(ctx context.Context, op uint8, internal uint16) (natpmpResponse, time.Duration, error) {
	return c.Map(ctx, op, internal, 0, 0)
}

// do runs one transaction. A response counts when it answers our opcode
// and, when it is a successful mapping response, our internal port (a late
// answer to another request on the socket is not ours). "Unsupported
// version" counts whatever its opcode: it answers the version, and some
// servers send it with opcode 0 (RFC 6886 erratum 3618).
func (c natpmpClient) do(ctx context.Context, req natpmpRequest) (natpmpResponse, time.Duration, error) {
	r, rtt, err := transact(ctx, c.conn, req.marshal(), parseNATPMPResponse, func(r natpmpResponse) bool {
		if r.Result == NATPMPUnsupportedVersion {
			return true
		}
		return r.Opcode == req.Opcode &&
			(r.Result != NATPMPSuccess || req.Opcode == natpmpOpExternalAddr || r.InternalPort == req.InternalPort)
	})
	if err != nil {
		return r, rtt, err
	}
	if r.Result != NATPMPSuccess {
		return r, rtt, &NATPMPResultError{Code: r.Result}
	}
	return r, rtt, nil
}

// natpmp tests NAT-PMP: the external address (opcode 0), a UDP mapping for
// a socket of ours (opcode 1), then its deletion (the same request with
// lifetime 0, RFC 6886 section 3.4).
func (c *checker) natpmp(ctx context.Context) {
	if err := interrupted(ctx); err != nil {
		c.fail(err)
		return
	}
	conn, err := dialGateway(c.gw, natpmpPort)
	if err != nil {
		// Nothing could be asked: as "not supported" as a refusal.
		c.res.Supported = tri.No
		c.fail(err)
		return
	}
	defer conn.Close()
	client := natpmpClient{conn}

	wctx, cancel := c.waitContext(ctx)
	ext, rtt, err := client.ExternalAddress(wctx)
	cancel()
	c.res.Timings.Discover = rtt
	var resErr *NATPMPResultError
	switch {
	case interrupted(ctx) != nil:
		c.fail(interrupted(ctx))
		return
	case err == nil:
		c.res.Supported = tri.Yes
		c.res.Server = fmt.Sprintf("NAT-PMP, epoch %ds", ext.Epoch)
		if !ext.ExternalIP.IsUnspecified() {
			c.res.ExternalIP = ext.ExternalIP
		}
	case errors.As(err, &resErr):
		// A result code is an answer from a NAT-PMP server (code 3 is a
		// gateway without a public address), except "unsupported version":
		// a server of another protocol (a PCP-only one, RFC 6887 section
		// 9) that does not speak NAT-PMP.
		c.res.Supported = tri.Of(resErr.Code != NATPMPUnsupportedVersion)
		c.fail(fmt.Errorf("external address: %w", err))
		if resErr.Code == NATPMPUnsupportedVersion {
			return
		}
	default:
		// Refused, silent, answered in PCP, or could not send.
		c.res.Supported = tri.No
		c.fail(err)
		return
	}

	sock, err := c.testSocket()
	if err != nil {
		c.fail(err)
		return
	}
	defer sock.Close()
	port := c.res.InternalPort
	// From here on a mapping may exist (the request may have arrived even
	// if its answer does not): delete it whatever happens next.
	defer c.natpmpDelete(ctx, client, port)

	wctx, cancel = c.waitContext(ctx)
	m, rtt, err := client.Map(wctx, natpmpOpMapUDP, port, port, c.lifetimeSeconds())
	cancel()
	c.res.Timings.Add = rtt
	if err != nil {
		switch {
		case interrupted(ctx) != nil:
			err = interrupted(ctx)
		case errors.As(err, &resErr):
			c.res.MappingAdded = tri.No // refused; without an answer it stays unknown
		}
		c.fail(fmt.Errorf("mapping: %w", err))
		return
	}
	c.res.MappingAdded = tri.Yes
	c.res.ExternalPort = m.ExternalPort
	c.res.Lifetime = time.Duration(m.Lifetime) * time.Second
	c.hold(ctx)
}

// natpmpDelete deletes the mapping of the internal port on a context that
// outlives the caller's, each wait bounded by Wait as the others are.
func (c *checker) natpmpDelete(ctx context.Context, client natpmpClient, port uint16) {
	cctx, cancel := c.cleanupContext(ctx)
	defer cancel()
	wctx, wcancel := c.waitContext(cctx)
	defer wcancel()
	_, rtt, err := client.Unmap(wctx, natpmpOpMapUDP, port)
	c.res.Timings.Delete = rtt
	c.deleted(ctx, err)
}
