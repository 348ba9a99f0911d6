package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/controller"
	"github.com/ouroboros-cloud/ouro/election"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/pki"
)

// haCloud is a control plane of several nodes on loopback, each node an
// etcd member (Debian's etcd) and an `ouro server` using the whole etcd
// cluster, every one a separate process, as separate machines would run
// them:
//
//	node 0: etcd-0 ◀──┐   server-0 ─┐  the first server makes the CA and
//	node 1: etcd-1 ◀──┼── server-1 ─┤  the admin; the CA files are copied
//	node 2: etcd-2 ◀──┘   server-2 ─┘  into the others' data dirs first
//
// The servers share the cluster CA (pki/ca.crt and pki/ca.key copied from
// the first server's data dir before the others' first start, the files
// pki.LoadOrCreateCA loads) and the admin token (made by the first
// server's bootstrap; the others find the admin in etcd and make none).
type haCloud struct {
	t     testing.TB
	dir   string
	nodes []*haNode
	// etcd is the test's own client of the whole cluster.
	etcd  *clientv3.Client
	ca    []byte
	admin string
	// agents are the hollow agents started with hollowAgent.
	agents []*proc
}

// haNode is one etcd member and the server beside it.
type haNode struct {
	name string
	// etcdName is the member's name; clientURL its client URL.
	etcdName, clientURL, peerURL string
	etcdProc                     *proc
	// server is the `ouro server` process, url its API.
	server    *proc
	serverDir string
	url       string
	args      []string
}

// newHACloud starts n nodes and returns once every server answers the
// admin through the cluster CA.
func newHACloud(t testing.TB, etcdBin string, n int) *haCloud {
	t.Helper()
	c := &haCloud{t: t, dir: containerTempDir(t)}
	ports := freePorts(t, 3*n)
	var initial, endpoints []string
	for i := range n {
		nd := &haNode{
			name:      fmt.Sprintf("node-%d", i),
			etcdName:  fmt.Sprintf("etcd-%d", i),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[3*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+1]),
			url:       fmt.Sprintf("https://127.0.0.1:%d", ports[3*i+2]),
			serverDir: filepath.Join(c.dir, fmt.Sprintf("server-%d", i)),
		}
		c.nodes = append(c.nodes, nd)
		initial = append(initial, nd.etcdName+"="+nd.peerURL)
		endpoints = append(endpoints, nd.clientURL)
	}
	for _, nd := range c.nodes {
		nd.etcdProc = startCmd(t, exec.Command(etcdBin, "--name", nd.etcdName,
			"--data-dir", filepath.Join(c.dir, nd.etcdName),
			"--listen-client-urls", nd.clientURL, "--advertise-client-urls", nd.clientURL,
			"--listen-peer-urls", nd.peerURL, "--initial-advertise-peer-urls", nd.peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(c.dir),
			"--logger", "zap", "--log-level", "warn"))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	c.etcd = cli
	wait.ForDetail(t, 60*time.Second, "etcd cluster with a leader", func() (bool, string) {
		for _, nd := range c.nodes {
			if nd.etcdProc.exited() {
				t.Fatalf("%s exited:\n%s", nd.etcdName, tail(nd.etcdProc.out.String(), 4000))
			}
		}
		_, ok, msg := c.etcdLeader()
		return ok, msg
	})

	for i, nd := range c.nodes {
		// Each server lists its own member first, then the others.
		eps := append([]string{nd.clientURL}, without(endpoints, i)...)
		nd.args = []string{"server", "--data-dir", nd.serverDir, "--listen", strings.TrimPrefix(nd.url, "https://"),
			"--etcd-endpoints", strings.Join(eps, ","), "--name", nd.serverName(), "--log-level", "info"}
		if i > 0 {
			c.copyCA(nd)
		}
		c.startServer(nd)
		if _, err := os.Stat(filepath.Join(nd.serverDir, "admin.token")); i > 0 && err == nil {
			t.Fatalf("%s made an admin token of its own; it should have found the first server's admin", nd.serverName())
		}
	}
	return c
}

// serverName is the server's name in the controller election.
func (nd *haNode) serverName() string { return "server-" + strings.TrimPrefix(nd.name, "node-") }

// copyCA puts the first server's CA into nd's data dir, as an operator
// copies it to a machine that is to run another server.
func (c *haCloud) copyCA(nd *haNode) {
	t := c.t
	t.Helper()
	src, dst := filepath.Join(c.nodes[0].serverDir, "pki"), filepath.Join(nd.serverDir, "pki")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{pki.CACertFile, 0o644}, {pki.CAKeyFile, 0o600}} {
		b, err := os.ReadFile(filepath.Join(src, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f.name), b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// startServer (re)starts nd's server and waits until it answers the
// admin over TLS verified with the first server's CA.
func (c *haCloud) startServer(nd *haNode) {
	t := c.t
	t.Helper()
	nd.server = startCmd(t, exec.Command(ouroBin, nd.args...))
	wait.ForDetail(t, 60*time.Second, nd.serverName()+" ready", func() (bool, string) {
		if nd.server.exited() {
			t.Fatalf("%s exited:\n%s", nd.serverName(), tail(nd.server.out.String(), 4000))
		}
		if c.ca == nil {
			ca, err := os.ReadFile(filepath.Join(nd.serverDir, "pki", pki.CACertFile))
			if err != nil {
				return false, err.Error()
			}
			tok, err := os.ReadFile(filepath.Join(nd.serverDir, "admin.token"))
			if err != nil {
				return false, err.Error()
			}
			c.ca, c.admin = ca, strings.TrimSpace(string(tok))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := c.client(nd).Whoami(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// client returns an admin client of nd's server.
func (c *haCloud) client(nd *haNode) *client.Client {
	cl, err := client.New(client.Config{Server: nd.url, Token: c.admin, CACert: c.ca})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// controllerLeader returns the node whose server leads the controllers,
// as the election key in etcd says.
func (c *haCloud) controllerLeader(ctx context.Context) (*haNode, error) {
	name, err := election.Leader(ctx, c.etcd, controller.DefaultElectionName)
	if err != nil {
		return nil, err
	}
	for _, nd := range c.nodes {
		if nd.serverName() == name {
			return nd, nil
		}
	}
	return nil, fmt.Errorf("controller leader %q is none of this cloud's servers", name)
}

// etcdLeader returns the node whose member leads etcd, once every member
// that answers agrees on it; msg says why not.
func (c *haCloud) etcdLeader() (leader *haNode, ok bool, msg string) {
	var id uint64
	for _, nd := range c.nodes {
		if nd.etcdProc.exited() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.etcd.Status(ctx, nd.clientURL)
		cancel()
		switch {
		case err != nil:
			return nil, false, fmt.Sprintf("%s: %v", nd.etcdName, err)
		case st.Leader == 0:
			return nil, false, nd.etcdName + " has no leader"
		case id != 0 && st.Leader != id:
			return nil, false, fmt.Sprintf("members disagree on the leader (%x, %x)", id, st.Leader)
		}
		id = st.Leader
		if st.Header.MemberId == st.Leader {
			leader = nd
		}
	}
	if leader == nil {
		return nil, false, fmt.Sprintf("leader %x is not a running member", id)
	}
	return leader, true, ""
}

// moveEtcdLeader hands etcd's leadership to to's member and waits until
// every member agrees.
func (c *haCloud) moveEtcdLeader(to *haNode) {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, ok, msg := c.etcdLeader()
	if !ok {
		t.Fatalf("etcd leader: %s", msg)
	}
	if cur == to {
		return
	}
	st, err := c.etcd.Status(ctx, to.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	// MoveLeader must reach the current leader.
	lc, err := clientv3.New(clientv3.Config{Endpoints: []string{cur.clientURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if _, err := lc.MoveLeader(ctx, st.Header.MemberId); err != nil {
		t.Fatalf("move etcd leadership to %s: %v", to.etcdName, err)
	}
	wait.ForDetail(t, 30*time.Second, "etcd leadership on "+to.etcdName, func() (bool, string) {
		l, ok, msg := c.etcdLeader()
		if !ok {
			return false, msg
		}
		return l == to, "leader is " + l.etcdName
	})
}

// stop kills every process of the cloud, waits for them and closes the
// etcd client; the end of the test does the same if stop is not called.
func (c *haCloud) stop() {
	for _, a := range c.agents {
		a.kill()
	}
	for _, nd := range c.nodes {
		nd.server.kill()
		nd.etcdProc.kill()
	}
	c.etcd.Close()
}

// powerOff SIGKILLs procs at once, as a node's power cut would, and waits
// until all are gone.
func powerOff(procs ...*proc) {
	for _, p := range procs {
		p.cmd.Process.Signal(os.Kill)
	}
	for _, p := range procs {
		<-p.done
	}
}

// hollowAgent joins n hollow hosts named prefix-0 … through nd's server
// and waits until they are Ready.
func (c *haCloud) hollowAgent(nd *haNode, prefix string, n int) *proc {
	t := c.t
	t.Helper()
	cl := c.client(nd)
	jt, err := cl.CreateJoinToken(context.Background(), api.JoinTokenRequest{TTL: "1h"})
	if err != nil || jt.Status.Secret == "" {
		t.Fatalf("join token: %v", err)
	}
	caFile := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(caFile, c.ca, 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "agent", "--hollow", fmt.Sprint(n), "--server", nd.url, "--ca-cert", caFile,
		"--join-token", jt.Status.Secret, "--data-dir", filepath.Join(c.dir, "hollow-"+prefix),
		"--name", prefix, "--log-level", "info")
	c.agents = append(c.agents, p)
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		wait.ForDetail(t, 60*time.Second, "hollow host "+name+" Ready", func() (bool, string) {
			if p.exited() {
				t.Fatalf("hollow agent exited:\n%s", tail(p.out.String(), 4000))
			}
			var h api.Host
			if err := cl.Get(context.Background(), api.HostKind, "", name, &h); err != nil {
				return false, err.Error()
			}
			return h.Status.Phase == api.HostReady, string(h.Status.Phase)
		})
	}
	return p
}

// without returns xs without its i-th element.
func without(xs []string, i int) []string {
	out := append([]string(nil), xs[:i]...)
	return append(out, xs[i+1:]...)
}
