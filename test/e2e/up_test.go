package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// upArgs returns the arguments of `ouro up` on free loopback ports.
func upArgs(t *testing.T, dataDir string) []string {
	return []string{"up", "--data-dir", dataDir,
		"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--agent-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
}

// startUp runs `ouro up` and waits for its welcome text; it returns a
// cloud handle reading the CLI config that up wrote.
func startUp(t *testing.T, args []string, config string) (*proc, *cloud) {
	t.Helper()
	p := start(t, []string{"OURO_CONFIG=" + config}, args...)
	wait.ForDetail(t, 90*time.Second, "ouro up", func() (bool, string) {
		if p.exited() {
			t.Fatalf("ouro up exited:\n%s", tail(p.out.String(), 4000))
		}
		return strings.Contains(p.out.String(), "Ouroboros is up"), ""
	})
	cfg, err := clientconfig.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := cfg.Current()
	if err != nil {
		t.Fatalf("ouro up wrote no current context to %s: %v", config, err)
	}
	c := &cloud{t: t, url: cur.Server, ca: []byte(cur.CACert), admin: cur.Token, config: config}
	return p, c
}

func TestUpRunsACloudAndBringsItBackAfterACrash(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "runc")
	testenv.NeedFile(t, "/bin/busybox")
	dir := containerTempDir(t)
	data := filepath.Join(dir, "data")
	t.Cleanup(func() { cleanupContainers(t, filepath.Join(data, "agent")) })
	args := upArgs(t, data)
	config := filepath.Join(dir, "config.yaml")

	p, c := startUp(t, args, config)
	c.ouro("instance", "create", "hello", "--image", "busybox", "--flavor", "tiny", "--wait",
		"--", "sh", "-c", "echo hello from ouroboros; exec sleep 3600")
	wait.ForDetail(t, 30*time.Second, "hello's output", func() (bool, string) {
		out := c.ouro("instance", "logs", "hello")
		return strings.Contains(out, "hello from ouroboros"), out
	})
	in, err := c.instance("default", "hello")
	if err != nil {
		t.Fatal(err)
	}
	rc := runcState(t, in.Metadata.UID)
	if rc == nil || rc.Status != "running" {
		t.Fatalf("hello is not running in runc: %+v", rc)
	}

	p.kill()
	_, c = startUp(t, args, config)
	c.ouro("instance", "create", "second", "--image", "busybox", "--flavor", "tiny", "--wait", "--", "sleep", "3600")
	again := c.waitPhase("default", "hello", api.PhaseRunning)
	if again.Metadata.UID != in.Metadata.UID {
		t.Errorf("hello came back as a different instance")
	}
	if now := runcState(t, in.Metadata.UID); now == nil || now.Pid != rc.Pid {
		t.Errorf("hello was restarted instead of adopted: pid %d → %+v", rc.Pid, now)
	}
	hosts := c.ouro("host", "list")
	if !strings.Contains(hosts, "Ready") {
		t.Errorf("host list after restart: %s", hosts)
	}
}

func TestUpWithoutRootSaysSo(t *testing.T) {
	testenv.NeedRoot(t) // to drop to nobody
	cmd := exec.Command(ouroBin, "up", "--data-dir", filepath.Join(t.TempDir(), "d"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(), "OURO_CONFIG="+filepath.Join(t.TempDir(), "c.yaml"))
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ouro up as nobody succeeded: %s", out)
	}
	if !strings.Contains(string(out), "needs root") {
		t.Errorf("ouro up as nobody said %q, want it to say it needs root", out)
	}
}

func TestServerOnExternalEtcd(t *testing.T) {
	etcdBin := testenv.NeedBinary(t, "etcd")
	dir := t.TempDir()
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	e := exec.Command(etcdBin, "--name", "ext", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "ext="+peerURL, "--log-level", "error")
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Process.Kill(); e.Wait() })

	c := newCloud(t, "--etcd-endpoints", clientURL)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro("instance", "create", "ext", "--image", "busybox", "--flavor", "tiny", "--wait", "--", "sleep", "3600")
	// The state is in the external etcd: a fresh server on it sees the instance.
	c.server.kill()
	c.startServer()
	var in api.Instance
	if err := c.clientAs(c.admin).Get(context.Background(), api.InstanceKind, "default", "ext", &in); err != nil {
		t.Fatalf("instance lost with external etcd: %v", err)
	}
}
