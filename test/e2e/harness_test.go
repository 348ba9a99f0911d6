package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/internal/cephtest"
	"github.com/ouroboros-cloud/ouro/internal/syncbuf"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// ouroBin is the binary built once for all tests.
var ouroBin string

// TestMain builds ouro from this tree, or uses the binary named by
// OURO_E2E_BIN when that is set (a build made elsewhere).
func TestMain(m *testing.M) {
	if bin := os.Getenv("OURO_E2E_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ouroBin = abs
		code := m.Run()
		cephtest.StopShared()
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "ouro-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by all: one test runs ouro as an unprivileged user.
	os.Chmod(dir, 0o755)
	ouroBin = filepath.Join(dir, "ouro")
	build := exec.Command("go", "build", "-o", ouroBin, "../../cmd/ouro")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ouro: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	cephtest.StopShared() // if a test started the shared Ceph cluster
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a started ouro process.
type proc struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
}

// start runs the ouro binary with args in the background; it is killed
// when the test ends.
func start(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	return startIn(t, "", env, args...)
}

// startIn is start inside the network namespace at path netns ("": the
// test's own).
func startIn(t testing.TB, netns string, env []string, args ...string) *proc {
	t.Helper()
	cmd := commandIn(netns, ouroBin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd)
}

// startCmd starts cmd in the background, its output kept; it is killed
// when the test ends, and its output logged if the test failed.
func startCmd(t testing.TB, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	name := filepath.Base(cmd.Path) + " " + strings.Join(cmd.Args[1:], " ")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

// kill ends the process with SIGKILL, as a crash or power cut would, and
// waits for it. Containers it started live on: they are not its children.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// cloud is a server and its agents, each a separate process, and a CLI
// config pointing at the server as admin.
type cloud struct {
	t          testing.TB
	dir        string
	serverDir  string
	serverArgs []string
	server     *proc
	url        string
	ca         []byte
	admin      string
	config     string
	agents     map[string]*agentProc
	// netns is the path of the network namespace the server, the CLI and
	// the API clients run in; "" is the test's own.
	netns string
	// transport dials inside netns; made on first use.
	transportOnce sync.Once
	transport     *http.Transport
}

type agentProc struct {
	*proc
	name, dir string
	args      []string
	// netns is the path of the host's network namespace, or "".
	netns string
}

// containerTempDir returns a new temporary directory for the test's
// clouds. The test's own temporary directory is 0700; containers' root,
// an unprivileged host uid in their user namespace, must reach its root
// file system below it, as below /var/lib/ouro (0711).
func containerTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newCloud starts a server with embedded etcd on free loopback ports.
func newCloud(t testing.TB, extraServerArgs ...string) *cloud {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "runc")
	dir := containerTempDir(t)
	c := &cloud{t: t, dir: dir, serverDir: filepath.Join(dir, "server"), agents: map[string]*agentProc{}}
	port := freePort(t)
	c.serverArgs = append([]string{"server", "--data-dir", c.serverDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), "--log-level", "debug"}, extraServerArgs...)
	c.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.startServer()
	c.writeConfig()
	return c
}

// writeConfig writes the CLI config with the admin's context.
func (c *cloud) writeConfig() {
	t := c.t
	t.Helper()
	c.config = filepath.Join(c.dir, "config.yaml")
	cfg, err := clientconfig.Load(c.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upsert(clientconfig.Context{Name: "e2e", Server: c.url, Token: c.admin, Project: "default", CACert: string(c.ca)}, true)
	if err := cfg.Save(c.config); err != nil {
		t.Fatal(err)
	}
}

// startServer (re)starts the server process and waits until it is ready.
func (c *cloud) startServer() {
	t := c.t
	t.Helper()
	c.server = startIn(t, c.netns, nil, c.serverArgs...)
	wait.ForDetail(t, 60*time.Second, "server ready", func() (bool, string) {
		if c.server.exited() {
			t.Fatalf("server exited:\n%s", tail(c.server.out.String(), 4000))
		}
		tok, err := os.ReadFile(filepath.Join(c.serverDir, "admin.token"))
		if err != nil {
			return false, err.Error()
		}
		ca, err := os.ReadFile(filepath.Join(c.serverDir, "pki", "ca.crt"))
		if err != nil {
			return false, err.Error()
		}
		c.admin, c.ca = strings.TrimSpace(string(tok)), ca
		cl := c.clientAs(c.admin)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := cl.Whoami(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// clientAs returns an API client with another token.
func (c *cloud) clientAs(token string) *client.Client {
	cfg := client.Config{Server: c.url, Token: token, CACert: c.ca}
	if c.netns != "" {
		cfg.HTTPClient = &http.Client{Transport: c.netnsTransport(), Timeout: 2 * time.Minute}
	}
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// addAgent joins a new host agent with its own data dir and endpoint.
func (c *cloud) addAgent(name string) *agentProc {
	c.t.Helper()
	return c.addAgentIn(name, "", "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", freePort(c.t)))
}

// addAgentIn joins a host agent that runs in the network namespace at
// path netns ("": the test's own), advertising address and listening on
// listen.
func (c *cloud) addAgentIn(name, netns, address, listen string) *agentProc {
	t := c.t
	t.Helper()
	jt := c.ouro("host", "join-token", "-o", "json")
	var tok api.JoinToken
	if err := json.Unmarshal([]byte(jt), &tok); err != nil || tok.Status.Secret == "" {
		t.Fatalf("join token: %v in %q", err, jt)
	}
	caFile := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(caFile, c.ca, 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{name: name, dir: filepath.Join(c.dir, "agent-"+name), netns: netns}
	a.args = []string{"agent", "--server", c.url, "--ca-cert", caFile, "--join-token", tok.Status.Secret,
		"--data-dir", a.dir, "--name", name, "--advertise-address", address,
		"--listen", listen, "--log-level", "debug"}
	t.Cleanup(func() { cleanupContainers(t, a.dir) })
	c.agents[name] = a
	c.startAgent(a)
	return a
}

// startAgent (re)starts an agent process and waits until its host is Ready.
func (c *cloud) startAgent(a *agentProc) {
	c.t.Helper()
	a.proc = startIn(c.t, a.netns, nil, a.args...)
	wait.ForDetail(c.t, 60*time.Second, "host "+a.name+" ready", func() (bool, string) {
		if a.exited() {
			c.t.Fatalf("agent exited:\n%s", tail(a.out.String(), 4000))
		}
		var h api.Host
		if err := c.clientAs(c.admin).Get(context.Background(), api.HostKind, "", a.name, &h); err != nil {
			return false, err.Error()
		}
		return h.Status.Phase == api.HostReady, string(h.Status.Phase)
	})
}

// ouro runs the CLI as the admin and returns its stdout; it fails the test
// if the command fails.
func (c *cloud) ouro(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(nil, args...)
	if err != nil {
		c.t.Fatalf("ouro %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// run runs the CLI with extra environment and returns stdout, stderr and
// the error.
func (c *cloud) run(env []string, args ...string) (string, string, error) {
	cmd := commandIn(c.netns, ouroBin, args...)
	cmd.Env = append(append(os.Environ(), "OURO_CONFIG="+c.config), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), errOut.String(), err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return out.String(), errOut.String(), fmt.Errorf("timed out")
	}
}

// instance reads an instance as admin.
func (c *cloud) instance(project, name string) (*api.Instance, error) {
	var in api.Instance
	err := c.clientAs(c.admin).Get(context.Background(), api.InstanceKind, project, name, &in)
	return &in, err
}

// waitPhase waits until an instance reaches phase.
func (c *cloud) waitPhase(project, name string, phase api.InstancePhase) *api.Instance {
	c.t.Helper()
	var in *api.Instance
	wait.ForDetail(c.t, 90*time.Second, name+" "+string(phase), func() (bool, string) {
		var err error
		in, err = c.instance(project, name)
		if err != nil {
			return false, err.Error()
		}
		return in.Status.Phase == phase, fmt.Sprintf("phase %s reason %s: %s", in.Status.Phase, in.Status.Reason, in.Status.Message)
	})
	return in
}
