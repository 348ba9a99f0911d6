package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func newCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateCA: %v", err)
	}
	return ca, dir
}

func TestLoadOrCreateCAKeepsCA(t *testing.T) {
	ca, dir := newCA(t)
	st, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode = %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatalf("second LoadOrCreateCA: %v", err)
	}
	if string(again.CertPEM()) != string(ca.CertPEM()) {
		t.Error("second start made a new CA")
	}
	if !ca.Certificate().IsCA {
		t.Error("CA certificate is not a CA")
	}
}

func TestLoadOrCreateCAReplacesLoneKey(t *testing.T) {
	dir := t.TempDir()
	// A crash after writing the key but before the certificate.
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir); err != nil {
		t.Fatalf("LoadOrCreateCA after crash: %v", err)
	}
}

func TestIssueServerCert(t *testing.T) {
	ca, _ := newCA(t)
	pair, err := ca.IssueServerCert([]string{"10.0.0.5", "ouro.example"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != ServerCN {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	for _, name := range []string{"localhost", "ouro.example", "10.0.0.5", "127.0.0.1", "::1"} {
		if err := c.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
}

func TestSignCSR(t *testing.T) {
	ca, _ := newCA(t)
	keyPEM, csrPEM, err := NewKeyAndCSR("host-1", []string{"10.1.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csrPEM, []string{"10.1.0.2", "host-1"}, "host-1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("signed certificate does not match the key: %v", err)
	}
	c, _ := x509.ParseCertificate(pair.Certificate[0])
	if c.Subject.CommonName != "ouro-agent:host-1" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "host-1"}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("agent certificate is valid for client auth")
	}

	tests := []struct {
		name string
		csr  []byte
	}{
		{"garbage", []byte("not pem")},
		{"wrong block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})},
		{"broken der", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}})},
	}
	for _, tt := range tests {
		if _, err := ca.SignCSR(tt.csr, []string{"h"}, "h"); err == nil {
			t.Errorf("%s: SignCSR accepted it", tt.name)
		}
	}
}

func TestLoadOrCreateServerCert(t *testing.T) {
	ca, dir := newCA(t)
	first, err := LoadOrCreateServerCert(dir, ca, []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	same, err := LoadOrCreateServerCert(dir, ca, []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.Certificate[0], same.Certificate[0]) {
		t.Error("certificate re-issued although nothing changed")
	}
	changed, err := LoadOrCreateServerCert(dir, ca, []string{"10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(first.Certificate[0], changed.Certificate[0]) {
		t.Error("certificate kept although the names changed")
	}
	c, _ := x509.ParseCertificate(changed.Certificate[0])
	if err := c.VerifyHostname("10.0.0.2"); err != nil {
		t.Error(err)
	}
	// Another CA's certificate on disk is replaced.
	other, _ := newCA(t)
	fromOther, err := LoadOrCreateServerCert(dir, other, []string{"10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(fromOther.Certificate[0], changed.Certificate[0]) {
		t.Error("certificate of another CA kept")
	}
}

func TestPoolFromPEM(t *testing.T) {
	ca, _ := newCA(t)
	if _, err := PoolFromPEM(ca.CertPEM()); err != nil {
		t.Error(err)
	}
	if _, err := PoolFromPEM([]byte("nothing")); err == nil {
		t.Error("PoolFromPEM accepted garbage")
	}
}

func TestWriteCAAndPin(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	got, err := WriteCA(dir, ca.CertPEM(), key)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if Pin(got.Certificate()) != Pin(ca.Certificate()) || Pin(again.Certificate()) != Pin(ca.Certificate()) {
		t.Fatal("the CA written is not the CA given")
	}
	other, _ := LoadOrCreateCA(t.TempDir())
	otherKey, _ := other.KeyPEM()
	if _, err := WriteCA(t.TempDir(), ca.CertPEM(), otherKey); err == nil {
		t.Fatal("WriteCA accepted a key of another CA")
	}
}
