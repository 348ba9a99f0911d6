package admission

import (
	"crypto/dsa"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
)

// authorizedKey returns the authorized_keys line of a public key with
// comment (none when empty).
func authorizedKey(t *testing.T, pub any, comment string) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

func TestParsePublicKey(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ed := authorizedKey(t, edPub, "me@laptop")
	edFields := strings.Fields(ed)
	privBlock, err := ssh.MarshalPrivateKey(edPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	dsaKey := &dsa.PublicKey{Parameters: dsa.Parameters{P: big.NewInt(23), Q: big.NewInt(11), G: big.NewInt(4)}, Y: big.NewInt(8)}
	dsaLine := "ssh-dss AAAAB3NzaC1kc3MAAAABFwAAAAELAAAAAQQAAAABCA== old"
	if k, err := ssh.NewPublicKey(dsaKey); err == nil {
		// A real ssh-dss line, while the package still makes them.
		dsaLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " old"
	}

	good := []struct {
		name, in, want, typ string
	}{
		{"ed25519", ed, ed, ssh.KeyAlgoED25519},
		{"extra spaces and newline", "  " + edFields[0] + "   " + edFields[1] + "   me@laptop \n", ed, ssh.KeyAlgoED25519},
		{"no comment", edFields[0] + " " + edFields[1], edFields[0] + " " + edFields[1], ssh.KeyAlgoED25519},
		{"comment with spaces", ed + " and more", ed + " and more", ssh.KeyAlgoED25519},
		{"ecdsa p256", authorizedKey(t, &ec256.PublicKey, "a"), authorizedKey(t, &ec256.PublicKey, "a"), ssh.KeyAlgoECDSA256},
		{"ecdsa p384", authorizedKey(t, &ec384.PublicKey, ""), authorizedKey(t, &ec384.PublicKey, ""), ssh.KeyAlgoECDSA384},
		{"rsa 2048", authorizedKey(t, &rsa2048.PublicKey, "r"), authorizedKey(t, &rsa2048.PublicKey, "r"), ssh.KeyAlgoRSA},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePublicKey("spec.publicKey", tt.in)
			if err != nil {
				t.Fatalf("parse %q: %v", tt.in, err)
			}
			pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(tt.want))
			if k.Line != tt.want || k.Type != tt.typ || k.Fingerprint != ssh.FingerprintSHA256(pk) || !strings.HasPrefix(k.Fingerprint, "SHA256:") {
				t.Errorf("got %+v, want line %q type %s", k, tt.want, tt.typ)
			}
		})
	}

	bad := []struct {
		name, in, msg string
	}{
		{"empty", "", "required"},
		{"blank", "  \n ", "required"},
		{"not a key", "hello world", "not an OpenSSH public key"},
		{"bad base64", edFields[0] + " AAAA!!!!", "not an OpenSSH public key"},
		{"truncated", edFields[0] + " " + edFields[1][:20], "not an OpenSSH public key"},
		{"private key", string(pem.EncodeToMemory(privBlock)), ""},
		{"two keys", ed + "\n" + authorizedKey(t, &ec256.PublicKey, "b"), "one key"},
		{"options", `command="/bin/ls" ` + ed, "options"},
		{"rsa 1024", authorizedKey(t, &rsa1024.PublicKey, "weak"), "1024 bits"},
		{"dsa", dsaLine, ""},
		{"control character in comment", ed + "\x07", "comment"},
		{"too long", ed + " " + strings.Repeat("x", maxPublicKey), "bytes"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePublicKey("spec.publicKey", tt.in)
			ae, ok := err.(*api.Error)
			if !ok || ae.Field != "spec.publicKey" || ae.Status != http.StatusBadRequest || ae.Hint == "" {
				t.Fatalf("parse %q = %+v, %v; want a 400 error on spec.publicKey with a hint", tt.in, k, err)
			}
			if !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("message %q does not say %q", ae.Message, tt.msg)
			}
		})
	}
}
