package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// Server certificate files kept by LoadOrCreateServerCert.
const (
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// ServerCN is the common name of server certificates; agents accept
// callers presenting a CA-signed certificate with this name.
const ServerCN = "ouro-server"

// AgentCNPrefix starts the common name of agent certificates:
// "ouro-agent:<host>".
const AgentCNPrefix = "ouro-agent:"

// IssueServerCert issues a server certificate for hosts (IP addresses and
// DNS names; localhost, 127.0.0.1 and ::1 are always added) usable for
// both server and client authentication: servers also present it when they
// call agents.
func (ca *CA) IssueServerCert(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	der, err := ca.sign(&key.PublicKey, ServerCN, serverHosts(hosts),
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
}

// SignCSR signs an agent's certificate request for its serving certificate
// (server authentication only). The certificate's names are hosts, not
// what the request asks for, and its common name is "ouro-agent:<cn>".
// It returns the certificate in PEM form.
func (ca *CA) SignCSR(csrPEM []byte, hosts []string, cn string) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, errors.New("sign CSR: no host names given")
	}
	der, err := ca.sign(csr.PublicKey, AgentCNPrefix+cn, hosts, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ParseCSR decodes a PEM certificate request and checks its signature.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("CSR: no CERTIFICATE REQUEST PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature: %w", err)
	}
	return csr, nil
}

// NewKeyAndCSR makes an ECDSA P-256 key and a certificate request for it
// with common name cn and the given host names, both in PEM form. Agents
// use it before joining.
func NewKeyAndCSR(cn string, hosts []string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	tmpl.IPAddresses, tmpl.DNSNames = splitHosts(hosts)
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CSR: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// LoadOrCreateServerCert returns the server certificate kept in dir
// (server.crt, server.key), issuing a new one when there is none, when it
// was not signed by ca, when its names differ from hosts (plus the
// loopback names) or when it expires within RenewBefore.
func LoadOrCreateServerCert(dir string, ca *CA, hosts []string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	for _, err := range []error{certErr, keyErr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return tls.Certificate{}, fmt.Errorf("read server certificate: %w", err)
		}
	}
	if certErr == nil && keyErr == nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err == nil && ca.stillGood(pair, serverHosts(hosts)) {
			return pair, nil
		}
	}
	pair, err := ca.IssueServerCert(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("server key is %T", pair.PrivateKey)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate directory: %w", err)
	}
	// Key first: a crash between the writes leaves a pair that does not
	// match, which the next start replaces.
	if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("write server key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]})
	if err := atomicfile.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("write server certificate: %w", err)
	}
	return pair, nil
}

// stillGood reports whether pair was signed by ca, names exactly hosts and
// is not close to expiry.
func (ca *CA) stillGood(pair tls.Certificate, hosts []string) bool {
	if len(pair.Certificate) == 0 {
		return false
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || c.CheckSignatureFrom(ca.cert) != nil {
		return false
	}
	if time.Until(c.NotAfter) < RenewBefore {
		return false
	}
	have := make([]string, 0, len(c.IPAddresses)+len(c.DNSNames))
	for _, ip := range c.IPAddresses {
		have = append(have, ip.String())
	}
	have = append(have, c.DNSNames...)
	want := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		want = append(want, h)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, slices.Compact(want))
}

func (ca *CA) sign(pub any, cn string, hosts []string, usage []x509.ExtKeyUsage) ([]byte, error) {
	now := time.Now()
	notAfter := now.Add(CertValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Ouroboros"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	tmpl.IPAddresses, tmpl.DNSNames = splitHosts(hosts)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", cn, err)
	}
	return der, nil
}

// serverHosts returns hosts plus the loopback names, without duplicates.
func serverHosts(hosts []string) []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

func splitHosts(hosts []string) (ips []net.IP, names []string) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			names = append(names, h)
		}
	}
	return ips, names
}
