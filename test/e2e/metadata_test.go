package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// metadataURL is where instances find the metadata service.
const metadataURL = "http://169.254.169.254"

// imds fetches path of the metadata service from inside an instance and
// returns the body; err is set when wget fails (a 404, for instance).
func (nc *netCloud) imds(name, path string) (string, error) {
	return nc.exec("", name, "timeout", "2", "wget", "-q", "-O", "-", metadataURL+path)
}

// TestMetadataServiceAndKeyPairs creates a key pair with the CLI, runs two
// containers on one network, one with the key and user-data, and checks
// from inside each that the metadata service at 169.254.169.254 tells it
// its own identity, key and user-data, and never the other's.
func TestMetadataServiceAndKeyPairs(t *testing.T) {
	nc := newNetCloud(t, 1)

	// The private key is made by the CLI and printed once; the server has
	// only the public half.
	priv := nc.ouro("keypair", "create", "laptop")
	signer, err := ssh.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatalf("keypair create printed no usable private key: %v\n%s", err, priv)
	}
	var kp api.KeyPair
	nc.getJSON(&kp, "keypair", "get", "laptop")
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(kp.Spec.PublicKey))
	if err != nil || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
		t.Fatalf("registered key %q (%v) is not the private key's", kp.Spec.PublicKey, err)
	}
	if kp.Status.Type != "ssh-ed25519" || kp.Status.Fingerprint != ssh.FingerprintSHA256(pub) {
		t.Errorf("key pair status %+v", kp.Status)
	}
	if out := nc.ouro("keypair", "list"); !strings.Contains(out, kp.Status.Fingerprint) {
		t.Errorf("keypair list lacks the fingerprint:\n%s", out)
	}

	userData := "#cloud-config\nruncmd:\n  - echo from user-data\n"
	udFile := filepath.Join(nc.dir, "user-data")
	if err := os.WriteFile(udFile, []byte(userData), 0o600); err != nil {
		t.Fatal(err)
	}
	nc.ouro("instance", "create", "meta-a", "--image", "busybox", "--flavor", "tiny", "--network", "default",
		"--key", "laptop", "--user-data", udFile, "--", "sh", "-c", "echo console of meta-a; exec sleep 3600")
	nc.ouro("instance", "create", "meta-b", "--image", "busybox", "--flavor", "tiny", "--network", "default",
		"--", "sleep", "3600")
	a := nc.waitPhase("default", "meta-a", api.PhaseRunning)
	b := nc.waitPhase("default", "meta-b", api.PhaseRunning)
	if len(a.Spec.PublicKeys) != 1 || a.Spec.PublicKeys[0] != kp.Spec.PublicKey || a.Spec.UserData != userData {
		t.Fatalf("meta-a spec: keys %q user-data %q", a.Spec.PublicKeys, a.Spec.UserData)
	}

	// The service starts with the network; wait until meta-a gets an answer.
	var id string
	wait.ForDetail(t, 30*time.Second, "the metadata service from meta-a", func() (bool, string) {
		id, err = nc.imds("meta-a", "/latest/meta-data/instance-id")
		return err == nil, fmt.Sprintf("%v: %s", err, id)
	})
	if id != a.Metadata.UID {
		t.Errorf("meta-a's instance-id is %q, want its UID %s", id, a.Metadata.UID)
	}
	for _, tt := range []struct{ name, path, want string }{
		{"meta-a", "/latest/meta-data/public-keys/0/openssh-key", kp.Spec.PublicKey},
		{"meta-a", "/latest/meta-data/public-keys/", "0=laptop"},
		{"meta-a", "/latest/meta-data/local-ipv4", a.Status.Interfaces[0].IP},
		{"meta-a", "/latest/meta-data/hostname", "meta-a"},
		{"meta-a", "/latest/meta-data/placement/availability-zone", "default"},
		{"meta-a", "/latest/user-data", userData},
		{"meta-b", "/latest/meta-data/instance-id", b.Metadata.UID},
		{"meta-b", "/latest/meta-data/local-ipv4", b.Status.Interfaces[0].IP},
		{"meta-b", "/latest/meta-data/hostname", "meta-b"},
	} {
		if got, err := nc.imds(tt.name, tt.path); err != nil || got != tt.want {
			t.Errorf("%s: GET %s = %q, %v; want %q", tt.name, tt.path, got, err, tt.want)
		}
	}
	// meta-b has no key, no user-data and no floating IP: 404s, and
	// certainly not meta-a's.
	for _, path := range []string{"/latest/user-data", "/latest/meta-data/public-keys/0/openssh-key", "/latest/meta-data/public-ipv4"} {
		if got, err := nc.imds("meta-b", path); err == nil {
			t.Errorf("meta-b: GET %s = %q, want 404", path, got)
		}
	}

	// Containers have no interactive console, and say so; their console
	// log is their output.
	_, errOut, err := nc.run(nil, "instance", "console", "meta-a")
	if err == nil || !strings.Contains(errOut, "has no console; use exec") {
		t.Errorf("console of a container: %v, %q", err, errOut)
	}
	wait.ForDetail(t, 10*time.Second, "meta-a's console log", func() (bool, string) {
		out := nc.ouro("instance", "console-log", "meta-a")
		return out == nc.ouro("instance", "logs", "meta-a") && strings.Contains(out, "console of meta-a"), out
	})

	// The key and user-data were copied: deleting the key pair changes
	// nothing for the instance.
	nc.ouro("keypair", "delete", "laptop")
	if got, err := nc.imds("meta-a", "/latest/meta-data/public-keys/0/openssh-key"); err != nil || got != kp.Spec.PublicKey {
		t.Errorf("key after the key pair was deleted: %q, %v", got, err)
	}
	if left := listJSON[api.KeyPair](nc.cloud, "keypair", "list"); len(left) != 0 {
		t.Errorf("key pairs left: %+v", left)
	}
}
