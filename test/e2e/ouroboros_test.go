package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// nestedAPIPort is the local port of the forward to the nested cloud's
// API, which the nested context names (bootstrap --context-server).
const nestedAPIPort = "17443"

// TestOuroboros is the cloud building itself: the outer cloud applies
// examples/ouroboros (a server VM and an agent VM of the ouro-host Debian
// image), `ouro bootstrap` installs a nested cloud onto them through the
// API's port forward, and the nested cloud's CLI — its own context,
// through a forward to the nested server's API — lists its host Ready and
// runs a container that prints a marker. A second bootstrap changes
// nothing; deleting the stack leaves nothing on the outer host. The VMs
// run under TCG here: every wait is sized for it.
func TestOuroboros(t *testing.T) {
	needVM(t)
	testenv.NeedBinary(t, "ssh-keygen")
	disk, kernel, initrd := testimage.DebianVariant(t, testimage.DebianOuroHost)
	nc := newNetCloud(t, 1)
	host := nc.hosts[0]
	killVMsOf(t, host)
	begin := time.Now()
	lap := func(what string) { t.Logf("%s at %s", what, time.Since(begin).Round(time.Second)) }

	nc.ouro("image", "import", "ouro-host", disk, "--kernel", kernel, "--initrd", initrd,
		"--cmdline", testimage.DebianCmdline, "--public")
	key := filepath.Join(nc.dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ouroboros", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	nc.ouro("apply", "-f", "../../examples/ouroboros/stack.yaml", "--set", "publicKey="+strings.TrimSpace(string(pub)), "--wait")
	vms := []string{"nested-server", "nested-agent"}
	uids := map[string]string{}
	for _, name := range vms {
		uids[name] = nc.waitPhase("default", name, api.PhaseRunning).Metadata.UID
	}
	vni := nc.networkVNI("", "ouroboros")
	lap("stack applied, VMs running")
	// sshd is up once cloud-init has made the host keys and installed the
	// key pair; its final stage says so on the console.
	finished := regexp.MustCompile(`Cloud-init v\. \S+ finished`)
	for _, name := range vms {
		wait.ForDetail(t, 10*time.Minute, "cloud-init finished on "+name, func() (bool, string) {
			log := nc.consoleLog(name)
			return finished.MatchString(log), tail(log, 2000)
		})
	}
	lap("cloud-init finished")

	// The example inventory, with the test's key.
	text, err := os.ReadFile("../../examples/ouroboros/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(nc.dir, "inventory.yaml")
	if err := os.WriteFile(inv, bytes.ReplaceAll(text, []byte("~/.ssh/id_ed25519"), []byte(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	bootstrap := func(args ...string) (string, error) {
		cmd := commandIn(nc.netns, ouroBin, append([]string{"bootstrap", "-i", inv, "--known-hosts", filepath.Join(nc.dir, "known_hosts"),
			"--context-server", "https://127.0.0.1:" + nestedAPIPort, "--ready-timeout", "10m"}, args...)...)
		cmd.Env = append(os.Environ(), "OURO_CONFIG="+nc.config)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return "", err
		}
		timer := time.AfterFunc(15*time.Minute, func() { cmd.Process.Kill() })
		defer timer.Stop()
		err := cmd.Wait()
		return out.String(), err
	}
	start := time.Now()
	out, err := bootstrap("--accept-new-host-keys")
	if err != nil {
		t.Fatalf("bootstrap of the nested cloud: %v\n%s", err, out)
	}
	t.Logf("bootstrap of the nested cloud took %s:\n%s", time.Since(start).Round(time.Second), out)
	lap("nested cloud bootstrapped")

	// The nested API, through a forward to the nested server's 7443.
	startIn(t, nc.netns, []string{"OURO_CONFIG=" + nc.config}, "instance", "port-forward", "nested-server", nestedAPIPort+":7443")
	nested := func(args ...string) (string, string, error) {
		return nc.run(nil, append([]string{"--context", "nested"}, args...)...)
	}
	wait.ForDetail(t, 2*time.Minute, "the nested cloud's host Ready", func() (bool, string) {
		out, errOut, err := nested("host", "list", "-o", "json")
		var l struct{ Items []api.Host }
		if err != nil || json.Unmarshal([]byte(out), &l) != nil {
			return false, errOut
		}
		// Ready, and offering containers: the image has what they need.
		return len(l.Items) == 1 && l.Items[0].Metadata.Name == "nested-agent" && l.Items[0].Status.Phase == api.HostReady &&
			slices.Contains(l.Items[0].Status.Drivers, api.DriverContainer), out
	})
	if out, errOut, err := nested("image", "import", "busybox", busyboxRootfs(t), "--public"); err != nil {
		t.Fatalf("image import into the nested cloud: %v\n%s%s", err, out, errOut)
	}
	const marker = "the-ouroboros-says-hi"
	if out, errOut, err := nested("instance", "create", "hello", "--image", "busybox", "--flavor", "tiny", "--",
		"sh", "-c", "echo "+marker+"; sleep 3600"); err != nil {
		t.Fatalf("instance create in the nested cloud: %v\n%s%s", err, out, errOut)
	}
	wait.ForDetail(t, 5*time.Minute, "the nested instance's marker", func() (bool, string) {
		out, errOut, err := nested("instance", "logs", "hello")
		if err == nil && strings.Contains(out, marker) {
			return true, ""
		}
		get, _, _ := nested("instance", "get", "hello", "-o", "yaml")
		return false, out + errOut + get
	})
	lap("the nested instance printed its marker")

	start = time.Now()
	if out, err := bootstrap(); err != nil || !strings.Contains(out, "Nothing to change.") || strings.Contains(out, " changed") {
		t.Fatalf("second bootstrap: %v\n%s", err, out)
	}
	t.Logf("the no-change bootstrap took %s", time.Since(start).Round(100*time.Millisecond))

	nc.ouro("stack", "delete", "ouroboros", "--wait")
	for _, name := range vms {
		waitVMGone(t, host, vni, name, uids[name])
	}
	if out := nc.ouro("instance", "list", "-o", "json"); strings.Contains(out, "nested-") {
		t.Errorf("instances left after the stack's deletion:\n%s", out)
	}
	lap("stack deleted, nothing left")
}
