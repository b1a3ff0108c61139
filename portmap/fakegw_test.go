package portmap

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// fakeGateway is an in-process gateway on its own loopback address (any
// 127.x.y.z works on Linux without configuration), serving NAT-PMP and PCP
// on 5351, SSDP on 1900 and a minimal IGD (description and SOAP) over HTTP.
type fakeGateway struct {
	addr     netip.Addr
	external netip.Addr
	noPCP    bool // answer PCP like a NAT-PMP-only server
	// private: behave like miniupnpd on a private WAN address: UPnP
	// reports an empty address and refuses mappings, NAT-PMP answers
	// result 3, PCP result 8 with the address in the response.
	private bool

	// NAT-PMP behaviours, for the client's tests.
	pmpResult    NATPMPResult // answer every NAT-PMP request with this result code
	pmpMapResult NATPMPResult // answer mapping requests only with this one
	pmpSilent    bool         // drop NAT-PMP requests
	pmpAsPCP     bool         // answer NAT-PMP in PCP (version 2, UNSUPP_VERSION)

	mu       sync.Mutex
	mappings map[string]bool // "proto/internal port", live ones
	added    int
	pmpReqs  int // NAT-PMP requests received
}

func loopbackAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(250)), byte(rand.IntN(256)), byte(1 + rand.IntN(250))})
}

func newFakeGateway(t *testing.T, ext string, upnp, natpmp bool) *fakeGateway {
	t.Helper()
	g := &fakeGateway{addr: loopbackAddr(), external: netip.MustParseAddr(ext), mappings: map[string]bool{}}
	if natpmp {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(g.addr, natpmpPort)))
		if err != nil {
			t.Skipf("cannot bind the fake gateway: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		go g.servePMP(c)
	}
	if upnp {
		hl, err := net.Listen("tcp4", netip.AddrPortFrom(g.addr, 0).String())
		if err != nil {
			t.Skipf("cannot bind the fake gateway: %v", err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(g.serveHTTP)}
		go srv.Serve(hl)
		t.Cleanup(func() { srv.Close() })
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(g.addr, ssdpPort)))
		if err != nil {
			t.Skipf("cannot bind the fake gateway: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		go g.serveSSDP(c, "http://"+hl.Addr().String()+"/rootDesc.xml")
	}
	return g
}

func (g *fakeGateway) gateway() StaticGateway {
	return StaticGateway{Addr: g.addr, Local: netip.MustParseAddr("127.0.0.1")}
}

func (g *fakeGateway) live() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for k, v := range g.mappings {
		if v {
			out = append(out, k)
		}
	}
	return out
}

func (g *fakeGateway) set(key string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mappings[key] = on
	if on {
		g.added++
	}
}

func (g *fakeGateway) servePMP(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if resp := g.handlePMP(buf[:n]); resp != nil {
			c.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (g *fakeGateway) handlePMP(b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	g.mu.Lock()
	noPCP, private := g.noPCP, g.private
	g.mu.Unlock()
	if b[0] == 2 {
		if noPCP {
			return []byte{0, b[1] | 0x80, 0, 1, 0, 0, 0, 0} // NAT-PMP: unsupported version
		}
		if len(b) < pcpHeaderLen {
			return nil
		}
		resp := make([]byte, len(b))
		copy(resp, b)
		resp[1] |= pcpResponseBit
		resp[2], resp[3] = 0, 0
		binary.BigEndian.PutUint32(resp[8:12], 42) // epoch
		clear(resp[12:24])
		if b[1] == pcpOpMap && len(b) >= pcpHeaderLen+pcpMapLen {
			lifetime := binary.BigEndian.Uint32(b[4:8])
			port := binary.BigEndian.Uint16(b[pcpHeaderLen+16:])
			if private {
				resp[3] = 8 // NO_RESOURCES
			} else {
				g.set(fmt.Sprintf("pcp/%d", port), lifetime > 0)
			}
			a := g.external.As16()
			copy(resp[pcpHeaderLen+20:], a[:])
		}
		return resp
	}
	g.mu.Lock()
	g.pmpReqs++
	result, mapResult, silent, asPCP := g.pmpResult, g.pmpMapResult, g.pmpSilent, g.pmpAsPCP
	g.mu.Unlock()
	switch {
	case silent:
		return nil
	case asPCP:
		resp := make([]byte, pcpHeaderLen)
		resp[0], resp[1], resp[3] = pcpVersion, b[1]|pcpResponseBit, 1 // UNSUPP_VERSION
		return resp
	case private:
		return []byte{0, b[1] | 0x80, 0, 3, 0, 0, 0, 42} // network failure
	case b[1] == 1 || b[1] == 2:
		if mapResult != 0 {
			result = mapResult
		}
	}
	switch b[1] {
	case 0:
		resp := []byte{0, 0x80, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(resp[2:4], uint16(result))
		a := g.external.As4()
		copy(resp[8:], a[:])
		return resp
	case 1, 2:
		if len(b) < 12 {
			return nil
		}
		port := binary.BigEndian.Uint16(b[4:6])
		lifetime := binary.BigEndian.Uint32(b[8:12])
		resp := make([]byte, 16)
		resp[1] = b[1] | 0x80
		binary.BigEndian.PutUint16(resp[2:4], uint16(result))
		binary.BigEndian.PutUint32(resp[4:8], 42)
		copy(resp[8:10], b[4:6])
		if result != 0 {
			return resp // section 3.5: the other fields are the request's, or zero
		}
		key := fmt.Sprintf("nat-pmp/%d", port)
		if b[1] == 2 {
			key = fmt.Sprintf("nat-pmp/tcp/%d", port)
		}
		g.set(key, lifetime > 0)
		if lifetime > 0 {
			copy(resp[10:12], b[6:8])
		} // deletion: external port 0 (section 3.4)
		copy(resp[12:16], b[8:12])
		return resp
	}
	// Section 3.5: an unknown opcode gets the request back, result 5.
	resp := append([]byte(nil), b...)
	resp[1] |= 0x80
	if len(resp) >= 4 {
		resp[2], resp[3] = 0, 5
	}
	return resp
}

// configure changes the gateway's behaviour while it serves.
func (g *fakeGateway) configure(f func(*fakeGateway)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

// pmpRequests is how many NAT-PMP requests the gateway has received.
func (g *fakeGateway) pmpRequests() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pmpReqs
}

func (g *fakeGateway) serveSSDP(c *net.UDPConn, location string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if strings.HasPrefix(string(buf[:n]), "M-SEARCH") {
			fmt.Fprintf(writerTo{c, from}, "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: %s\r\nSERVER: fake/1.0 UPnP/1.1 test\r\n\r\n", location)
		}
	}
}

type writerTo struct {
	c  *net.UDPConn
	to netip.AddrPort
}

func (w writerTo) Write(b []byte) (int, error) { return w.c.WriteToUDPAddrPort(b, w.to) }

const fakeDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>fake</friendlyName>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`

var soapArg = regexp.MustCompile(`<(New\w+)>([^<]*)</New\w+>`)

func (g *fakeGateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/rootDesc.xml" {
		io.WriteString(w, fakeDesc)
		return
	}
	body, _ := io.ReadAll(r.Body)
	args := map[string]string{}
	for _, m := range soapArg.FindAllStringSubmatch(string(body), -1) {
		args[m[1]] = m[2]
	}
	action := r.Header.Get("SOAPAction")
	action = strings.Trim(action[strings.Index(action, "#")+1:], `"`)
	out := ""
	g.mu.Lock()
	private := g.private
	g.mu.Unlock()
	switch {
	case action == "GetExternalIPAddress" && private:
		out = "<NewExternalIPAddress></NewExternalIPAddress>"
	case action == "AddPortMapping" && private:
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>501</errorCode><errorDescription>ActionFailed</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`)
		return
	}
	switch action {
	case "GetExternalIPAddress":
		if out == "" {
			out = "<NewExternalIPAddress>" + g.external.String() + "</NewExternalIPAddress>"
		}
	case "AddPortMapping":
		g.set("upnp/"+args["NewInternalPort"], true)
	case "DeletePortMapping":
		g.set("upnp/"+args["NewExternalPort"], false) // the test maps external = internal
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">%s</u:%sResponse></s:Body></s:Envelope>`, action, out, action)
}
