package server

import (
	"net/netip"

	"github.com/natcheck/natcheck/rendezvous"
)

// amplification bounds a UDP answer to this many times the request's size.
// With it a minimal 20-byte request still gets every attribute over IPv4
// (80 bytes) and the ones RFC 5780 clients need over IPv6; see buildSuccess.
const amplification = 4

// maxSTUN is the largest STUN request answered, and the largest STUN
// answer built (mirrored PADDING included).
const maxSTUN = 2048

// maxResponse is the size of an answer buffer: a STUN answer or a
// rendezvous reply (a sealed 2 KiB blob and its header).
const maxResponse = rendezvous.MaxMessage

// Endpoint indexes within a family: bit 0 selects the alternate port,
// bit 1 the alternate IP, so CHANGE-REQUEST flags map onto XOR.
const (
	epAltPort = 1
	epAltIP   = 2
)

// family is the RFC 5780 address/port grid of one address family.
type family struct {
	ep [4]netip.AddrPort // the bound sockets; ep[2], ep[3] are invalid without a second IP
	// adv are the addresses clients reach ep at, named in RESPONSE-ORIGIN
	// and OTHER-ADDRESS: different from ep behind a 1:1 NAT (a cloud VM's
	// public addresses, Config.Advertise). An invalid entry means ep's own.
	adv   [4]netip.AddrPort
	twoIP bool
}

// advertised is the address clients know endpoint i by.
func (f *family) advertised(i int) netip.AddrPort {
	if a := f.adv[i]; a.IsValid() {
		return a
	}
	return f.ep[i]
}

// replyKind classifies what was sent, for metrics.
type replyKind uint8

const (
	replySuccess replyKind = iota
	replyError400
	replyError420
	replyRendezvous
	numReplyKinds
)

var replyNames = [numReplyKinds]string{"success", "error_400", "error_420", "rendezvous"}

// reply is the outcome of one request.
type reply struct {
	n    int            // response length in out; 0 when dropped
	from int            // endpoint index to send from
	to   netip.AddrPort // destination
	kind replyKind
	drop dropReason
}

// handler turns a request into a reply. It is shared by all workers and
// must stay allocation-free.
type handler struct {
	fam      *family
	lim      *limiter // nil: no rate limit
	software string
	rdv      *rendezvous.Store // nil: rendezvous requests get "disabled"
}

// handle processes one request that arrived on endpoint local from src.
// stream is true for TCP, where the answer always goes back on the same
// connection and no amplification bound is needed (the handshake proves
// the source).
func (h *handler) handle(pkt []byte, src netip.AddrPort, local int, stream bool, now int64, out []byte) reply {
	if !stream && rendezvous.IsMessage(pkt) {
		return h.rendezvous(pkt, src, local, false, now, out)
	}
	if len(pkt) > maxSTUN {
		return reply{drop: dropTooLarge}
	}
	if len(out) > maxSTUN {
		out = out[:maxSTUN]
	}
	var r request
	if d := parseRequest(pkt, &r); d != dropNone {
		return reply{drop: d}
	}
	if h.lim != nil {
		class := limitPlain
		switch {
		case stream:
			class = limitTCP
		case r.change != 0:
			class = limitChange
		}
		if !h.lim.allow(src, class, now) {
			return reply{drop: dropRateLimited}
		}
	}
	rep := reply{from: local, to: src}
	switch {
	case r.nUnknown > 0:
		return h.fail(rep, &r, 420, r.unknown[:r.nUnknown], out)
	case r.hasRespPort && r.padLen >= 0:
		// RFC 5780 6.1: PADDING with RESPONSE-PORT is a 400.
		return h.fail(rep, &r, 400, nil, out)
	case stream && r.change != 0:
		// A TCP connection cannot be answered from another address or
		// port; say so rather than pretend (RFC 5780 section 6).
		return h.fail(rep, &r, 420, []uint16{attrChangeRequest}, out)
	case stream && r.hasRespPort:
		return h.fail(rep, &r, 420, []uint16{attrResponsePort}, out)
	case r.change&changeIP != 0 && !h.fam.twoIP:
		// Never answer from the wrong place: without a second IP the
		// change cannot be honoured (RFC 5780 section 6).
		return h.fail(rep, &r, 420, []uint16{attrChangeRequest}, out)
	case r.hasRespPort && r.respPort == 0:
		return h.fail(rep, &r, 400, nil, out)
	}
	if r.change&changeIP != 0 {
		rep.from ^= epAltIP
	}
	if r.change&changePort != 0 {
		rep.from ^= epAltPort
	}
	if r.hasRespPort {
		rep.to = netip.AddrPortFrom(src.Addr(), r.respPort)
	}
	// Both name the advertised addresses: behind a 1:1 NAT the answer
	// still leaves from a private socket, and the NAT gives it the
	// public source that RESPONSE-ORIGIN names.
	a := answer{mapped: src, origin: h.fam.advertised(rep.from)}
	if h.fam.twoIP {
		// OTHER-ADDRESS is Ca:Cp relative to where the request arrived,
		// whatever the flags (RFC 5780 table 1).
		a.other = h.fam.advertised(local ^ (epAltIP | epAltPort))
	}
	budget := len(out)
	if !stream {
		budget = amplification * len(pkt)
	}
	rep.n = buildSuccess(out, &r, &a, budget, h.software)
	return rep
}

// rendezvous answers a rendezvous request: a datagram, or one read from a
// TCP connection (stream; its magic can never start a STUN message, see
// package rendezvous). It takes a token from the source's buckets like a
// plain Binding request. Without --rendezvous a well-formed request is
// told so, in a reply smaller than itself.
func (h *handler) rendezvous(pkt []byte, src netip.AddrPort, local int, stream bool, now int64, out []byte) reply {
	if len(pkt) > rendezvous.MaxMessage {
		return reply{drop: dropTooLarge}
	}
	if h.lim != nil && !h.lim.allow(src, limitPlain, now) {
		return reply{drop: dropRateLimited}
	}
	rep := reply{from: local, to: src, kind: replyRendezvous}
	switch {
	case h.rdv != nil && stream:
		rep.n = h.rdv.HandleStream(pkt, src, now, out)
	case h.rdv != nil:
		rep.n = h.rdv.Handle(pkt, src, now, out)
	default:
		rep.n = rendezvous.Disabled(pkt, out)
	}
	if rep.n == 0 {
		rep.drop = dropMalformed
	}
	return rep
}

func (h *handler) fail(rep reply, r *request, code int, unknown []uint16, out []byte) reply {
	rep.n = buildError(out, r, code, unknown)
	rep.kind = replyError400
	if code == 420 {
		rep.kind = replyError420
	}
	return rep
}
