package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/pki"
)

// keyPair returns a key and a certificate for it signed by a fresh CA.
func keyPair(t *testing.T) (keyPEM, certPEM []byte) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(pki.AgentCNPrefix+"host-1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err = ca.SignCSR(csrPEM, []string{"127.0.0.1"}, "host-1")
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, certPEM
}

func TestSaveLoad(t *testing.T) {
	keyPEM, certPEM := keyPair(t)
	c := Credentials{Server: "https://10.0.0.1:7443", Host: "host-1", Token: "secret", CACert: "PEM"}
	tests := []struct {
		name    string
		damage  func(dir string) error // after a good Save; nil keeps it
		want    bool                   // an identity is loaded
		wantErr string
	}{
		{name: "saved", want: true},
		{name: "nothing saved", damage: func(dir string) error {
			for _, f := range []string{File, KeyFile, CertFile} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					return err
				}
			}
			return nil
		}},
		{name: "interrupted join: no key", damage: func(dir string) error { return os.Remove(filepath.Join(dir, KeyFile)) }},
		{name: "interrupted join: half a key pair", damage: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, CertFile), []byte("-----BEGIN"), 0o600)
		}},
		{name: "corrupt credentials", damage: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, File), []byte("{"), 0o600)
		}, wantErr: "parse"},
		{name: "no token", damage: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, File), []byte(`{"host":"host-1"}`), 0o600)
		}, wantErr: "host or token missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Save(dir, c, keyPEM, certPEM); err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				if err := tt.damage(dir); err != nil {
					t.Fatal(err)
				}
			}
			id, err := Load(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (id != nil) != tt.want {
				t.Fatalf("Load = %+v, want an identity: %v", id, tt.want)
			}
			if id != nil && (id.Creds != c || len(id.Cert.Certificate) == 0) {
				t.Errorf("Load = %+v, want %+v and the certificate", id.Creds, c)
			}
		})
	}
}
