package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// sshHost is a namespace host with its own sshd and its own paths for
// ouro (the hosts of one machine share its file system).
type sshHost struct {
	underlayHost
	bin, data string
}

// startSSHHosts starts sshd in each host namespace of u, letting in the
// returned key (its private key file).
func startSSHHosts(t testing.TB, u *underlay, dir string) (key string, hosts []sshHost) {
	t.Helper()
	testenv.NeedBinary(t, "/usr/sbin/sshd")
	testenv.NeedBinary(t, "ssh-keygen")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "bootstrap test")
	if err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range u.hosts {
		hd := filepath.Join(dir, h.name)
		if err := os.MkdirAll(hd, 0o711); err != nil {
			t.Fatal(err)
		}
		hostKey := filepath.Join(hd, "ssh_host_ed25519_key")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		cfg := filepath.Join(hd, "sshd_config")
		conf := strings.Join([]string{"Port 22", "ListenAddress " + h.ip, "HostKey " + hostKey,
			"AuthorizedKeysFile " + authorized, "PermitRootLogin prohibit-password", "PasswordAuthentication no",
			"KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PidFile none"}, "\n") + "\n"
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		startCmd(t, commandIn(h.netns, "/usr/sbin/sshd", "-D", "-e", "-f", cfg))
		sh := sshHost{underlayHost: h, bin: filepath.Join(hd, "bin", "ouro"), data: filepath.Join(hd, "data")}
		hosts = append(hosts, sh)
		t.Cleanup(func() { stopBootstrapped(t, sh) })
	}
	for _, h := range hosts {
		wait.ForDetail(t, 30*time.Second, "sshd on "+h.name, func() (bool, string) {
			out, err := runIn(u.server, 5*time.Second, "bash", "-c", "exec 3<>/dev/tcp/"+h.ip+"/22 && head -c 4 <&3")
			return err == nil && strings.HasPrefix(out, "SSH-"), out
		})
	}
	return key, hosts
}

// stopBootstrapped kills what bootstrap started on h (by its pid files)
// and the agent's containers and networks.
func stopBootstrapped(t testing.TB, h sshHost) {
	for _, role := range []string{"agent", "server"} {
		if log, err := os.ReadFile(filepath.Join(h.data, "ouro-"+role+".log")); err == nil && t.Failed() {
			t.Logf("%s's %s log:\n%s", h.name, role, tail(string(log), 6000))
		}
		pidFile := filepath.Join(h.data, "ouro-"+role+".pid")
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			// Killed once: a later call must not kill a process that
			// took the number since.
			os.Remove(pidFile)
		}
	}
	cleanupContainers(t, filepath.Join(h.data, "agent"))
}

// inventoryFor writes an inventory of hosts with roles.
func inventoryFor(t testing.TB, dir, key string, hosts []sshHost, roles map[string]string, extra string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "cloud: lab\npackages: check\nssh: {user: root, key: %s}\nhosts:\n", key)
	for _, h := range hosts {
		r, ok := roles[h.name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "- name: %s\n  address: %s\n  roles: [%s]\n  paths: {binary: %s, data: %s}\n", h.name, h.ip, r, h.bin, h.data)
	}
	b.WriteString(extra)
	p := filepath.Join(dir, fmt.Sprintf("inventory-%d.yaml", len(roles)))
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBootstrapOntoMachines builds a cloud of one server and one agent
// on two machines (namespaces with their own sshd) with `ouro bootstrap`,
// runs an instance on it, reruns the bootstrap (nothing changes), and
// checks that bad hosts are named with the step that failed.
func TestBootstrapOntoMachines(t *testing.T) {
	u := newUnderlay(t, 3)
	dir := containerTempDir(t)
	key, hosts := startSSHHosts(t, u, dir)
	known := filepath.Join(dir, "known_hosts")
	config := filepath.Join(dir, "client.yaml")
	bootstrap := func(args ...string) (string, error) {
		cmd := commandIn(u.server, ouroBin, append([]string{"bootstrap", "--known-hosts", known}, args...)...)
		cmd.Env = append(os.Environ(), "OURO_CONFIG="+config)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	inv := inventoryFor(t, dir, key, hosts, map[string]string{"h1": "server", "h2": "agent"}, "")

	// An unknown host key is refused without --accept-new-host-keys.
	out, err := bootstrap("-i", inv)
	if err == nil || !strings.Contains(out, "h1") || !strings.Contains(out, "accept-new-host-keys") {
		t.Fatalf("bootstrap with unknown host keys: %v\n%s", err, out)
	}

	start := time.Now()
	out, err = bootstrap("-i", inv, "--accept-new-host-keys")
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	t.Logf("bootstrap of 1 server and 1 agent took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, want := range []string{"h1               server     changed", "h2               agent      changed", "lab              context    changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("bootstrap output lacks %q:\n%s", want, out)
		}
	}

	// The new cloud, through the context bootstrap wrote.
	lab := &cloud{t: t, dir: dir, config: config, netns: u.server, agents: map[string]*agentProc{}}
	hostsOut := lab.ouro("--context", "lab", "host", "list", "-o", "json")
	var hl struct{ Items []api.Host }
	if err := json.Unmarshal([]byte(hostsOut), &hl); err != nil || len(hl.Items) != 1 || hl.Items[0].Metadata.Name != "h2" || hl.Items[0].Status.Phase != api.HostReady {
		t.Fatalf("hosts of the new cloud: %v %s", err, hostsOut)
	}
	lab.ouro("--context", "lab", "image", "import", "busybox", busyboxRootfs(t), "--public")
	lab.ouro("--context", "lab", "instance", "create", "hello", "--image", "busybox", "--flavor", "tiny", "--",
		"sh", "-c", "echo bootstrapped-cloud-says-hi; sleep 3600")
	wait.ForDetail(t, 2*time.Minute, "the instance's marker in its logs", func() (bool, string) {
		out, _, err := lab.run(nil, "--context", "lab", "instance", "logs", "hello")
		if err == nil && strings.Contains(out, "bootstrapped-cloud-says-hi") {
			return true, ""
		}
		get, errOut, _ := lab.run(nil, "--context", "lab", "instance", "get", "hello", "-o", "yaml")
		return false, out + get + errOut
	})

	// A rerun changes nothing, and --check agrees.
	start = time.Now()
	out, err = bootstrap("-i", inv)
	if err != nil || !strings.Contains(out, "Nothing to change.") || strings.Contains(out, " changed") {
		t.Fatalf("second bootstrap: %v\n%s", err, out)
	}
	t.Logf("no-change rerun took %s", time.Since(start).Round(time.Millisecond))
	if out, err := bootstrap("-i", inv, "--check"); err != nil || !strings.Contains(out, "Nothing to change.") {
		t.Fatalf("bootstrap --check: %v\n%s", err, out)
	}

	// A host added to the inventory is the only one touched.
	inv3 := inventoryFor(t, dir, key, hosts, map[string]string{"h1": "server", "h2": "agent", "h3": "agent"}, "")
	if out, err := bootstrap("-i", inv3, "--check", "--accept-new-host-keys"); err != nil || !strings.Contains(out, "h3") || strings.Contains(out, "h2               agent      would") {
		t.Fatalf("bootstrap --check with a new host: %v\n%s", err, out)
	}
	out, err = bootstrap("-i", inv3, "--accept-new-host-keys")
	if err != nil || !strings.Contains(out, "h3               agent      changed") || strings.Contains(out, "h2               agent      changed") {
		t.Fatalf("bootstrap with a new host: %v\n%s", err, out)
	}

	// Failures name the host and the step: a host nobody answers on, a
	// key the host refuses.
	otherKey := filepath.Join(dir, "other_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", otherKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	bad := inventoryFor(t, dir, key, hosts, map[string]string{"h1": "server"},
		"- name: ghost\n  address: 10.99.0.99\n  roles: [agent]\n"+
			fmt.Sprintf("- name: wrongkey\n  address: %s\n  roles: [agent]\n  ssh: {key: %s}\n  paths: {binary: %s, data: %s}\n",
				hosts[1].ip, otherKey, hosts[1].bin, hosts[1].data))
	out, err = bootstrap("-i", bad, "--ready-timeout", "20s")
	if err == nil || !strings.Contains(out, "ghost: connect:") || !strings.Contains(out, "wrongkey: connect: log in as root with key") {
		t.Errorf("bootstrap with bad hosts: %v\n%s", err, out)
	}
}
