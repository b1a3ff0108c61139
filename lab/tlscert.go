package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority made at test run time, for TLS servers in
// the lab (coturn's turns:). Nothing is ever trusted outside the test: the
// CA's certificate is only a file clients are pointed at (--ca).
type CA struct {
	// File is the CA certificate, PEM, for a client's --ca.
	File string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

// CertOptions describe one server certificate.
type CertOptions struct {
	Names []string     // DNS names (subject alternative names)
	IPs   []netip.Addr // IP addresses (subject alternative names)
	// NotBefore and NotAfter default to an hour ago and a day from now.
	// An expired certificate: both in the past.
	NotBefore, NotAfter time.Time
}

// Cert is a server certificate and its key, as PEM files.
type Cert struct {
	File, KeyFile string
}

var (
	certMu     sync.Mutex
	certSerial = big.NewInt(time.Now().UnixNano())
)

// NewCA makes a CA (ECDSA P-256) named name, its files in a temp dir of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"natcheck lab"}},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{cert: cert, key: key, dir: t.TempDir()}
	ca.File = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

func nextSerial() *big.Int {
	certMu.Lock()
	defer certMu.Unlock()
	certSerial.Add(certSerial, big.NewInt(1))
	return new(big.Int).Set(certSerial)
}

// Issue makes a server certificate signed by the CA; the certificate file
// holds the chain (server, then CA), as TLS servers send it.
func (ca *CA) Issue(t testing.TB, o CertOptions) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = time.Now().Add(24 * time.Hour)
	}
	cn := "lab server"
	if len(o.Names) > 0 {
		cn = o.Names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    nb,
		NotAfter:     na,
		DNSNames:     o.Names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range o.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(ca.dir, "cert")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{File: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	if err := os.WriteFile(c.File, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	writePEM(t, c.KeyFile, "PRIVATE KEY", kder)
	return c
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
