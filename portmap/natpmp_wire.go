package portmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// NAT-PMP wire format, RFC 6886 section 3. It shares port 5351 and the
// first bytes of its header (version, opcode with the response bit) with
// PCP; its version is 0, PCP's 2.
const (
	natpmpVersion        = 0
	natpmpOpExternalAddr = 0
	natpmpOpMapUDP       = 1
	natpmpOpMapTCP       = 2
	natpmpAddrReqLen     = 2  // section 3.2
	natpmpAddrRespLen    = 12 // section 3.2
	natpmpMapReqLen      = 12 // section 3.3
	natpmpMapRespLen     = 16 // section 3.3
	natpmpErrRespLen     = 8  // section 3.5: version, opcode, result, epoch
)

// NATPMPResult is a NAT-PMP result code (RFC 6886 section 3.5).
type NATPMPResult uint16

// The result codes RFC 6886 defines.
const (
	NATPMPSuccess            NATPMPResult = 0
	NATPMPUnsupportedVersion NATPMPResult = 1
	NATPMPNotAuthorized      NATPMPResult = 2 // not authorized/refused
	NATPMPNetworkFailure     NATPMPResult = 3 // e.g. the gateway has no external address
	NATPMPOutOfResources     NATPMPResult = 4
	NATPMPUnsupportedOpcode  NATPMPResult = 5
)

var natpmpResultNames = map[NATPMPResult]string{
	NATPMPSuccess:            "success",
	NATPMPUnsupportedVersion: "unsupported version",
	NATPMPNotAuthorized:      "not authorized/refused",
	NATPMPNetworkFailure:     "network failure: the gateway has no external address",
	NATPMPOutOfResources:     "out of resources",
	NATPMPUnsupportedOpcode:  "unsupported opcode",
}

// String names the code as the report words it; "" for codes RFC 6886
// does not define.
func (r NATPMPResult) String() string { return natpmpResultNames[r] }

// NATPMPResultError is a NAT-PMP response with a non-zero result code: an
// answer from a NAT-PMP server (or, with NATPMPUnsupportedVersion, from a
// server that does not speak NAT-PMP).
type NATPMPResultError struct{ Code NATPMPResult }

func (e *NATPMPResultError) Error() string {
	if n := e.Code.String(); n != "" {
		return fmt.Sprintf("NAT-PMP result %d (%s)", e.Code, n)
	}
	return fmt.Sprintf("NAT-PMP result %d", e.Code)
}

// errPCPAnswer: the server answered a NAT-PMP request in PCP's version 2
// (RFC 6887 section 9): it speaks PCP, not NAT-PMP.
var errPCPAnswer = errors.New("unknown protocol version 2 (server responded with PCP / Port Control Protocol)")

// natpmpRequest is one request we send: the external address (opcode 0)
// or a UDP or TCP mapping (opcodes 1 and 2; lifetime 0 deletes).
type natpmpRequest struct {
	Opcode       uint8
	InternalPort uint16 // mapping only
	ExternalPort uint16 // mapping only: suggested; 0 = no preference, and for deletion
	Lifetime     uint32 // mapping only: seconds
}

func (r natpmpRequest) marshal() []byte {
	if r.Opcode == natpmpOpExternalAddr {
		return []byte{natpmpVersion, natpmpOpExternalAddr}
	}
	b := make([]byte, natpmpMapReqLen)
	b[0] = natpmpVersion
	b[1] = r.Opcode
	// b[2:4] reserved, zero.
	binary.BigEndian.PutUint16(b[4:6], r.InternalPort)
	binary.BigEndian.PutUint16(b[6:8], r.ExternalPort)
	binary.BigEndian.PutUint32(b[8:12], r.Lifetime)
	return b
}

// natpmpResponse is what we read from a NAT-PMP response. Fields past the
// epoch are zero in error responses that leave them out.
type natpmpResponse struct {
	Opcode uint8 // without the response bit
	Result NATPMPResult
	Epoch  uint32 // seconds since the server's start or reset
	// Opcode 0.
	ExternalIP netip.Addr
	// Opcodes 1 and 2.
	InternalPort uint16
	ExternalPort uint16 // the mapped external port
	Lifetime     uint32 // granted, seconds
}

// natpmpRespLen is the length of a successful response to opcode op, 0 for
// opcodes NAT-PMP does not define.
func natpmpRespLen(op uint8) int {
	switch op {
	case natpmpOpExternalAddr:
		return natpmpAddrRespLen
	case natpmpOpMapUDP, natpmpOpMapTCP:
		return natpmpMapRespLen
	}
	return 0
}

// parseNATPMPResponse decodes a datagram from the NAT-PMP server and never
// panics on any input. A successful response must have exactly its
// opcode's length (12 or 16 octets); an error response may stop after the
// epoch (8 octets, as in section 3.5's "unsupported version") but is never
// longer than a mapping response. A PCP (version 2) message comes back as
// errPCPAnswer.
func parseNATPMPResponse(b []byte) (natpmpResponse, error) {
	var r natpmpResponse
	if len(b) >= 4 && b[0] == pcpVersion {
		return r, errPCPAnswer
	}
	if len(b) < natpmpErrRespLen {
		return r, fmt.Errorf("NAT-PMP response too short: %d bytes", len(b))
	}
	if len(b) > natpmpMapRespLen {
		return r, fmt.Errorf("NAT-PMP response too long: %d bytes", len(b))
	}
	if b[0] != natpmpVersion {
		return r, fmt.Errorf("NAT-PMP response with unknown version %d", b[0])
	}
	r.Opcode = b[1] &^ pcpResponseBit
	r.Result = NATPMPResult(binary.BigEndian.Uint16(b[2:4]))
	// Erratum 3618: section 3.5's "unsupported version" response showed
	// OP = 0, and some servers send it so; it is still a response.
	if b[1]&pcpResponseBit == 0 && (b[1] != 0 || r.Result != NATPMPUnsupportedVersion) {
		return natpmpResponse{}, errors.New("NAT-PMP message is a request, not a response")
	}
	r.Epoch = binary.BigEndian.Uint32(b[4:8])
	want := natpmpRespLen(r.Opcode)
	switch {
	case r.Result != NATPMPSuccess:
		// Section 3.5: errors may come back for any opcode, short or
		// (for unsupported opcodes, the whole request echoed) not.
	case want == 0:
		return natpmpResponse{}, fmt.Errorf("NAT-PMP success for unknown opcode %d", r.Opcode)
	case len(b) != want:
		return natpmpResponse{}, fmt.Errorf("NAT-PMP response to opcode %d of length %d, want %d", r.Opcode, len(b), want)
	}
	switch {
	case r.Opcode == natpmpOpExternalAddr && len(b) >= natpmpAddrRespLen:
		r.ExternalIP = netip.AddrFrom4([4]byte(b[8:12]))
	case (r.Opcode == natpmpOpMapUDP || r.Opcode == natpmpOpMapTCP) && len(b) >= natpmpMapRespLen:
		r.InternalPort = binary.BigEndian.Uint16(b[8:10])
		r.ExternalPort = binary.BigEndian.Uint16(b[10:12])
		r.Lifetime = binary.BigEndian.Uint32(b[12:16])
	}
	return r, nil
}
