package apitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
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
	keyPEM, err := os.ReadFile(filepath.Join(s.pkiDir, pki.CAKeyFile))
	if err != nil {
		tb.Fatalf("read CA key: %v", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		tb.Fatal("CA key: no PEM block")
	}
	caKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		tb.Fatalf("parse CA key: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generate key: %v", err)
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CA.Certificate(), &key.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("sign client certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
