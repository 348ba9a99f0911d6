package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
)

// sentKeyPair returns the key pair the CLI posted last.
func sentKeyPair(t *testing.T, c *cloud) api.KeyPair {
	t.Helper()
	var kp api.KeyPair
	for _, r := range c.requestsSeen() {
		if r.Method == "POST" && r.Path == "/v1/projects/demo/keypairs" {
			if err := json.Unmarshal([]byte(r.Body), &kp); err != nil {
				t.Fatal(err)
			}
		}
	}
	return kp
}

// checkPair asserts that privPEM is an OpenSSH private key whose public
// half is the key the CLI registered.
func checkPair(t *testing.T, privPEM []byte, registered string) {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatalf("private key does not parse: %v\n%s", err, privPEM)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type %s, want ed25519", signer.PublicKey().Type())
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(registered))
	if err != nil {
		t.Fatalf("registered key %q: %v", registered, err)
	}
	if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
		t.Error("the registered public key is not the private key's")
	}
}

func TestKeyPairCreatePrintsPrivateKeyOnce(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	r := runCLI(t, nil, "", "keypair", "create", "laptop")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "-----BEGIN OPENSSH PRIVATE KEY-----\n") || strings.Count(r.stdout, "BEGIN") != 1 {
		t.Fatalf("stdout is not one private key: %q", r.stdout)
	}
	kp := sentKeyPair(t, c)
	if kp.Metadata.Name != "laptop" || !strings.HasSuffix(kp.Spec.PublicKey, " laptop") {
		t.Errorf("registered %+v", kp)
	}
	checkPair(t, []byte(r.stdout), kp.Spec.PublicKey)
	if !strings.Contains(r.stderr, "SHA256:") || !strings.Contains(r.stderr, "only once") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestKeyPairCreateToFile(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	file := filepath.Join(t.TempDir(), "id_laptop")
	r := runCLI(t, nil, "", "keypair", "create", "laptop", "-f", file)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, st.Mode())
	}
	data, _ := os.ReadFile(file)
	checkPair(t, data, sentKeyPair(t, c).Spec.PublicKey)
	if strings.Contains(r.stdout, "PRIVATE KEY") || !strings.Contains(r.stdout, file) {
		t.Errorf("stdout %q", r.stdout)
	}

	// An existing file is never overwritten, and nothing is registered.
	before := len(c.requestsSeen())
	r = runCLI(t, nil, "", "keypair", "create", "other", "-f", file)
	if r.code == 0 || !strings.Contains(r.stderr, "--file") || !strings.Contains(r.stderr, "exists") {
		t.Errorf("create onto an existing file: exit %d, %q", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(file); !bytes.Equal(after, data) {
		t.Error("the existing key file changed")
	}
	if len(c.requestsSeen()) != before {
		t.Error("a request was sent although the file exists")
	}

	// A refused registration leaves no key file behind.
	c.fail("POST /v1/projects/demo/keypairs", &api.Error{Status: 409, Code: api.CodeAlreadyExists, Message: "KeyPair exists"})
	file2 := filepath.Join(t.TempDir(), "id_dup")
	if r := runCLI(t, nil, "", "keypair", "create", "laptop", "-f", file2); r.code == 0 {
		t.Error("create of an existing key pair succeeded")
	}
	if _, err := os.Stat(file2); err == nil {
		t.Error("the key file of a refused key pair was kept")
	}
}

func TestKeyPairImportAndList(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "id.pub")
	line := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"
	os.WriteFile(pubFile, []byte(line+"\n"), 0o644)
	r := runCLI(t, nil, "", "keypair", "import", "laptop", "--public-key", pubFile)
	if r.code != 0 || sentKeyPair(t, c).Spec.PublicKey != line {
		t.Fatalf("import: exit %d %s; sent %+v", r.code, r.stderr, sentKeyPair(t, c))
	}
	r = runCLI(t, nil, line, "keypair", "import", "desk", "--public-key", "-")
	if r.code != 0 || sentKeyPair(t, c).Spec.PublicKey != line {
		t.Fatalf("import from stdin: exit %d %s", r.code, r.stderr)
	}
	r = runCLI(t, nil, "", "keypair", "list")
	for _, want := range []string{"NAME", "TYPE", "FINGERPRINT", "laptop", "ssh-ed25519", "SHA256:", "desk"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}

	privFile := filepath.Join(dir, "id")
	os.WriteFile(privFile, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	before := len(c.requestsSeen())
	for _, args := range [][]string{
		{"keypair", "import", "x", "--public-key", privFile},
		{"keypair", "import", "x"},
		{"keypair", "import", "x", "--public-key", filepath.Join(dir, "missing.pub")},
		{"keypair", "create", "Bad_Name"},
	} {
		if r := runCLI(t, nil, "", args...); r.code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
	if len(c.requestsSeen()) != before {
		t.Error("bad input reached the server")
	}
}

func TestInstanceCreateKeyAndUserData(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.add(t, &api.KeyPair{Metadata: api.ObjectMeta{Name: "laptop", Project: "demo"},
		Spec: api.KeyPairSpec{PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"}})
	file := filepath.Join(t.TempDir(), "user-data")
	os.WriteFile(file, []byte("#cloud-config\nhostname: web\n"), 0o600)
	if r := runCLI(t, nil, "", "instance", "create", "web", "--image", "busybox", "--flavor", "small", "--key", "laptop", "--user-data", file); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "#!/bin/sh\n", "instance", "create", "job", "--image", "busybox", "--flavor", "small", "--user-data", "-"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	web, job := c.instance(t, "web"), c.instance(t, "job")
	if web.Spec.KeyName != "laptop" || web.Spec.UserData != "#cloud-config\nhostname: web\n" {
		t.Errorf("web sent %+v", web.Spec)
	}
	if job.Spec.KeyName != "" || job.Spec.UserData != "#!/bin/sh\n" {
		t.Errorf("job sent %+v", job.Spec)
	}

	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, bytes.Repeat([]byte("x"), 16<<10+1), 0o600)
	before := len(c.requestsSeen())
	for _, args := range [][]string{
		{"--user-data", big},
		{"--user-data", filepath.Join(t.TempDir(), "missing")},
		{"--key", "Not_A_Name"},
	} {
		r := runCLI(t, nil, "", append([]string{"instance", "create", "x", "--image", "busybox", "--flavor", "small"}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, args[0]) {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
		}
	}
	if len(c.requestsSeen()) != before {
		t.Error("bad flags reached the server")
	}
}

func TestConsoleLogIsTheWholeLog(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	c.serveAgent(t, api.ExecResponse{}, nil)
	r := runCLI(t, nil, "", "instance", "console-log", "web-1")
	if r.code != 0 || r.stdout != "log of web-1 tail=\n" {
		t.Errorf("console-log: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}
