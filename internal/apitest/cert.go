package apitest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/pki"
)

// ClientCert issues a client certificate of the cluster CA with common
// name cn, such as the one of another agent, for tests of who an agent's
// endpoint lets in. (The CA issues client certificates only to servers.)
func (s *Server) ClientCert(tb testing.TB, cn string) tls.Certificate {
	tb.Helper()
	caPEM, err := os.ReadFile(filepath.Join(s.pkiDir, pki.CAKeyFile))
	if err != nil {
		tb.Fatalf("read CA key: %v", err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		tb.Fatal("CA key: no PEM block")
	}
	caKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("parse CA key: %v", err)
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(cn, nil)
	if err != nil {
		tb.Fatalf("make key: %v", err)
	}
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		tb.Fatalf("parse CSR: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		tb.Fatalf("serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CA.Certificate(), csr.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("sign client certificate: %v", err)
	}
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
	if err != nil {
		tb.Fatalf("client key pair: %v", err)
	}
	return pair
}
