package portmap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
	"github.com/natcheck/natcheck/internal/tri"
)

// UPnP error codes (IGD WANIPConnection service) the test reacts to.
const (
	upnpConflict           = 718 // ConflictInMappingEntry
	upnpOnlyPermanent      = 725 // OnlyPermanentLeasesSupported
	upnpNoSuchEntry        = 714 // NoSuchEntryInArray
	maxDescriptionBytes    = 1 << 20
	upnpMappingDescription = "natcheck test (deleted at once)"
)

// igdClient is what the WAN connection services of IGD v1 and v2 share.
type igdClient interface {
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	AddPortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string,
		intPort uint16, intClient string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, extPort uint16, proto string) error
}

// upnp tests UPnP IGD with github.com/huin/goupnp: SSDP discovery sent to
// the gateway itself, its description, the external address, then adding
// and deleting a UDP mapping for a socket of ours.
func (c *checker) upnp(ctx context.Context) {
	wctx, cancel := c.waitContext(ctx)
	loc, server, rtt, err := c.ssdp(wctx)
	cancel()
	c.res.Timings.Discover = rtt
	switch {
	case interrupted(ctx) != nil:
		c.fail(interrupted(ctx))
		return
	case errors.Is(err, ErrRefused), errors.Is(err, ErrNoAnswer):
		c.res.Supported = tri.No
		c.fail(err)
		return
	case err != nil:
		c.fail(err)
		return
	}
	c.res.Server = server

	hc := gatewayHTTPClient()
	wctx, cancel = c.waitContext(ctx)
	client, err := c.igd(wctx, hc, loc)
	cancel()
	if err != nil {
		if interrupted(ctx) != nil {
			err = interrupted(ctx)
		}
		if errors.Is(err, errNotIGD) {
			c.res.Supported = tri.No
		}
		c.fail(err)
		return
	}
	c.res.Supported = tri.Yes

	start := time.Now()
	wctx, cancel = c.waitContext(ctx)
	ext, err := client.GetExternalIPAddressCtx(wctx)
	cancel()
	c.res.Timings.ExternalIP = time.Since(start)
	if err != nil {
		c.fail(fmt.Errorf("GetExternalIPAddress: %w", upnpError(err)))
	} else if ext == "" {
		c.fail(errors.New("gateway reports no external address (empty)"))
	} else if a, perr := parseAddr(ext); perr != nil {
		c.fail(fmt.Errorf("GetExternalIPAddress: %w", perr))
	} else if a.IsUnspecified() {
		// miniupnpd answers 0.0.0.0 when its WAN address is private or
		// shared (RFC 6598): it knows it is not the last NAT.
		c.fail(errors.New("gateway reports no external address (0.0.0.0)"))
	} else {
		c.res.ExternalIP = a
	}
	if interrupted(ctx) != nil {
		c.fail(interrupted(ctx))
		return
	}
	c.upnpMap(ctx, client)
}

// upnpMap adds a UDP mapping for a socket of ours and deletes it again.
func (c *checker) upnpMap(ctx context.Context, client igdClient) {
	sock, err := c.testSocket()
	if err != nil {
		c.fail(err)
		return
	}
	defer sock.Close()
	// The external port equals the internal one (an ephemeral port, rarely
	// taken on the gateway); on a conflict, one other port is tried.
	ext := c.res.InternalPort
	lease := c.lifetimeSeconds()
	start := time.Now()
	var pending []uint16 // external ports a mapping may exist for
	defer func() { c.upnpDelete(ctx, client, pending) }()
	for try := 0; try < 3; try++ {
		pending = append(pending, ext)
		wctx, cancel := c.waitContext(ctx)
		err = client.AddPortMappingCtx(wctx, "", ext, "UDP", c.res.InternalPort,
			c.gw.Local.String(), true, upnpMappingDescription, lease)
		cancel()
		switch soapCode(err) {
		case upnpOnlyPermanent:
			// Old IGD v1 gateways: a permanent lease is the only kind. It
			// is deleted below like any other.
			lease = 0
			continue
		case upnpConflict:
			ext = ext ^ 0x4000 | 0x8000 // another port in the dynamic range
			continue
		}
		break
	}
	c.res.Timings.Add = time.Since(start)
	if err != nil {
		switch {
		case interrupted(ctx) != nil:
			err = interrupted(ctx)
		case soapCode(err) != 0:
			// The gateway answered with a refusal: nothing to delete.
			// Without an answer (timeout) the mapping may exist, so it
			// stays pending and "added" stays unknown.
			c.res.MappingAdded = tri.No
			pending = nil
		}
		c.fail(fmt.Errorf("AddPortMapping: %w", upnpError(err)))
		return
	}
	c.res.MappingAdded = tri.Yes
	c.res.ExternalPort = ext
	c.res.Lifetime = time.Duration(lease) * time.Second
	pending = []uint16{ext}
	c.hold(ctx)
}

// upnpDelete deletes the mappings that may exist, on a context that
// outlives the caller's.
func (c *checker) upnpDelete(ctx context.Context, client igdClient, ports []uint16) {
	if len(ports) == 0 {
		return
	}
	cctx, cancel := c.cleanupContext(ctx)
	defer cancel()
	start := time.Now()
	var failed error
	deleted := false
	for _, p := range ports {
		err := client.DeletePortMappingCtx(cctx, "", p, "UDP")
		switch {
		case err == nil:
			deleted = true
		case soapCode(err) == upnpNoSuchEntry && c.res.MappingAdded != tri.Yes:
			// An interrupted or refused add left nothing behind.
		default:
			failed = err
		}
	}
	c.res.Timings.Delete = time.Since(start)
	switch {
	case failed != nil && c.res.MappingAdded == tri.Yes:
		c.res.MappingDeleted = tri.No
		c.fail(fmt.Errorf("DeletePortMapping: %w", upnpError(failed)))
	case deleted:
		c.res.MappingDeleted = tri.Yes
	}
}

// UPnPError is a UPnP action refused by the gateway (a SOAP fault).
type UPnPError struct {
	Code        int
	Description string
}

func (e *UPnPError) Error() string {
	return fmt.Sprintf("UPnP error %d (%s)", e.Code, e.Description)
}

// upnpError turns goupnp's SOAP fault (whose text is raw XML) into a
// UPnPError; other errors pass unchanged.
func upnpError(err error) error {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) && f.Detail.UPnPError.Errorcode != 0 {
		return &UPnPError{Code: f.Detail.UPnPError.Errorcode, Description: f.Detail.UPnPError.ErrorDescription}
	}
	return err
}

// soapCode is the UPnP error code in a SOAP fault, 0 if err is none.
func soapCode(err error) int {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return f.Detail.UPnPError.Errorcode
	}
	return 0
}

// Search targets sent in each M-SEARCH round: any root device (one answer
// per device, whatever its IGD version) and IGD v1 explicitly for stacks
// that only answer their own device type.
var searchTargets = []string{"upnp:rootdevice", "urn:schemas-upnp-org:device:InternetGatewayDevice:1"}

// ssdp sends M-SEARCH to the gateway's own address (unicast, which UDA 1.1
// allows), so a gateway without UPnP refuses at once instead of leaving us
// to wait out a multicast search. It returns the first description URL on
// the gateway and the SERVER header.
func (c *checker) ssdp(ctx context.Context) (*url.URL, string, time.Duration, error) {
	conn, err := dialGateway(c.gw, ssdpPort)
	if err != nil {
		return nil, "", 0, err
	}
	defer conn.Close()
	var reqs [][]byte
	for _, st := range searchTargets {
		// MX 1: multicast answers may be delayed up to a second; unicast
		// ones come at once.
		reqs = append(reqs, fmt.Appendf(nil, "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"+
			"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: %s\r\n\r\n", st))
	}
	var loc *url.URL
	var server string
	_, rtt, err := exchange(ctx, conn, reqs, func(b []byte) bool {
		u, s, ok := c.parseSSDP(b)
		if ok {
			loc, server = u, s
		}
		return ok
	})
	return loc, server, rtt, err
}

// parseSSDP accepts an M-SEARCH answer whose description URL is on the
// gateway itself: a LOCATION elsewhere is not the gateway's IGD.
func (c *checker) parseSSDP(b []byte) (*url.URL, string, bool) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, "", false
	}
	resp.Body.Close()
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || u.Scheme != "http" || !c.onGateway(u) {
		return nil, "", false
	}
	return u, resp.Header.Get("Server"), true
}

// onGateway says whether u names the gateway by its address.
func (c *checker) onGateway(u *url.URL) bool {
	a, err := parseAddr(u.Hostname())
	return err == nil && a == c.gw.Addr
}

// candidate is one WAN connection service found in a description.
type candidate struct {
	client igdClient
	sc     *goupnp.ServiceClient
}

// igd fetches the device description at loc and returns a client for its
// first WAN connection service (IGD v2 IP, v1 IP, v1 PPP, in that order).
func (c *checker) igd(ctx context.Context, hc *http.Client, loc *url.URL) (igdClient, error) {
	root, err := fetchDescription(ctx, hc, loc)
	if err != nil {
		return nil, err
	}
	base := loc
	if root.URLBaseStr != "" {
		if base, err = url.Parse(root.URLBaseStr); err != nil {
			return nil, fmt.Errorf("device description: URLBase: %w", err)
		}
	}
	root.SetURLBase(base)
	var candidates []candidate
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil {
		for _, cl := range cs {
			candidates = append(candidates, candidate{cl, &cl.ServiceClient})
		}
	}
	if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil {
		for _, cl := range cs {
			candidates = append(candidates, candidate{cl, &cl.ServiceClient})
		}
	}
	if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil {
		for _, cl := range cs {
			candidates = append(candidates, candidate{cl, &cl.ServiceClient})
		}
	}
	for _, cand := range candidates {
		// SOAP goes to the gateway only, and never through a proxy.
		if !c.onGateway(&cand.sc.SOAPClient.EndpointURL) {
			continue
		}
		cand.sc.SOAPClient.HTTPClient = *hc
		return cand.client, nil
	}
	return nil, errNotIGD
}

// errNotIGD: a UPnP device answered on the gateway, but it offers no WAN
// connection service there, so it cannot map ports.
var errNotIGD = errors.New("the gateway's UPnP device has no WAN connection service on the gateway (not an IGD)")

// fetchDescription reads the root device description, at most 1 MiB.
func fetchDescription(ctx context.Context, hc *http.Client, loc *url.URL) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device description: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("device description: HTTP %s", resp.Status)
	}
	d := xml.NewDecoder(io.LimitReader(resp.Body, maxDescriptionBytes))
	d.DefaultSpace = goupnp.DeviceXMLNamespace
	d.CharsetReader = goupnp.CharsetReaderDefault
	root := new(goupnp.RootDevice)
	if err := d.Decode(root); err != nil {
		return nil, fmt.Errorf("device description: %w", err)
	}
	return root, nil
}

// gatewayHTTPClient talks to the gateway directly: no proxy from the
// environment, no redirects away from it.
func gatewayHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{}).DialContext,
			DisableKeepAlives: true, // miniupnpd closes after each request anyway
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// parseAddr parses an IP address literal as an unmapped netip.Addr.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("bad address %s", strconv.Quote(s))
	}
	return a.Unmap(), nil
}
