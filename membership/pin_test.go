package membership

import (
	"crypto/x509"
	"testing"

	"github.com/ouroboros-cloud/ouro/pki"
)

func TestVerifyPinned(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	chain := func(signer *pki.CA) []*x509.Certificate {
		pair, err := signer.IssueServerCert([]string{"10.1.0.100"})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{leaf, signer.Certificate()}
	}
	pin := pki.Pin(ca.Certificate())
	for _, tc := range []struct {
		name  string
		certs []*x509.Certificate
		host  string
		ok    bool
	}{
		{"the pinned CA", chain(ca), "10.1.0.100", true},
		{"another CA", chain(other), "10.1.0.100", false},
		{"a leaf of another CA with the pinned CA beside it", []*x509.Certificate{chain(other)[0], ca.Certificate()}, "10.1.0.100", false},
		{"no CA sent", chain(ca)[:1], "10.1.0.100", false},
		{"another host", chain(ca), "10.1.0.101", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyPinned(tc.certs, pin, tc.host)
			if (err == nil) != tc.ok {
				t.Fatalf("verifyPinned = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
