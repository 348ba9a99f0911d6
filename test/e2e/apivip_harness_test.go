package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/pki"
)

// The API VIP tests' network, their own beside the underlay's:
//
//	switch: bridge br0 (namespace <prefix>-sw), 10.97.13.0/24
//	  s1 10.97.13.11, s2 .12, s3 .13   servers, each in its namespace with
//	                                   its embedded etcd member (peers over
//	                                   https on these addresses)
//	  h1 10.97.13.21                   a host agent
//	  cli 10.97.13.31                  the CLI and the test's API clients
//	  API VIP 10.97.13.100/24          held by one server
//
// The first server starts alone with --api-vip; the others join with
// `ouro server --join`. Every client, the agent included, uses the VIP.
const (
	vipSubnet = "10.97.13."
	apiVIP    = vipSubnet + "100"
)

// vipServer is one server of a vipCloud.
type vipServer struct {
	name, netns, ip, dir string
	args                 []string
	proc                 *proc
}

// vipCloud is a control plane of servers on the VIP network, reached
// through the VIP; its embedded cloud's CLI and clients run in the cli
// namespace.
type vipCloud struct {
	*cloud
	u       *underlay
	servers []*vipServer
}

// newVIPCloud starts n servers (the first alone, the others joined with
// join tokens) and waits until every one is ready and the VIP answers.
func newVIPCloud(t testing.TB, n int) *vipCloud {
	t.Helper()
	testenv.NeedRoot(t)
	for _, bin := range []string{"ip", "nsenter"} {
		testenv.NeedBinary(t, bin)
	}
	u := &underlay{prefix: "ov" + randomSuffix(4)}
	u.sw = addNetns(t, u.prefix+"-sw")
	ip(t, u.sw, "link", "add", "br0", "type", "bridge")
	ip(t, u.sw, "link", "set", "br0", "up")
	dir := containerTempDir(t)
	c := &cloud{t: t, dir: dir, agents: map[string]*agentProc{}, url: "https://" + apiVIP + ":7443"}
	c.netns = u.attach(t, "cli", vipSubnet+"31")
	vc := &vipCloud{cloud: c, u: u}
	for i := range n {
		s := &vipServer{name: fmt.Sprintf("s%d", i+1), ip: fmt.Sprintf("%s%d", vipSubnet, 11+i)}
		s.netns = u.attach(t, s.name, s.ip)
		s.dir = filepath.Join(dir, s.name)
		s.args = []string{"server", "--data-dir", s.dir, "--listen", ":7443", "--name", s.name,
			"--etcd-client-url", "http://127.0.0.1:2379", "--etcd-peer-url", "https://" + s.ip + ":2380",
			"--api-vip", apiVIP + "/24", "--log-level", "debug"}
		if i > 0 {
			s.args = append(s.args, "--join", vc.serverJoinToken())
		}
		vc.servers = append(vc.servers, s)
		vc.startServer(s)
		if i == 0 {
			vc.firstServerReady(s)
		}
		vc.waitServers(i + 1)
	}
	return vc
}

// startServer (re)starts s.
func (vc *vipCloud) startServer(s *vipServer) {
	vc.t.Helper()
	s.proc = startIn(vc.t, s.netns, nil, s.args...)
}

// firstServerReady reads the admin token and CA the first server made,
// writes the CLI config (the VIP's URL) and waits until the VIP answers.
func (vc *vipCloud) firstServerReady(s *vipServer) {
	t := vc.t
	t.Helper()
	wait.ForDetail(t, 60*time.Second, "first server's admin token and CA", func() (bool, string) {
		if s.proc.exited() {
			t.Fatalf("%s exited:\n%s", s.name, tail(s.proc.out.String(), 4000))
		}
		tok, err := os.ReadFile(filepath.Join(s.dir, "admin.token"))
		if err != nil {
			return false, err.Error()
		}
		ca, err := os.ReadFile(filepath.Join(s.dir, "pki", pki.CACertFile))
		if err != nil {
			return false, err.Error()
		}
		vc.admin, vc.ca = strings.TrimSpace(string(tok)), ca
		return true, ""
	})
	vc.writeConfig()
	vc.waitVIP(60 * time.Second)
}

// waitVIP waits until the API answers through the VIP.
func (vc *vipCloud) waitVIP(timeout time.Duration) {
	vc.t.Helper()
	wait.ForDetail(vc.t, timeout, "the API through the VIP", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := vc.clientAs(vc.admin).Whoami(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// serverJoinToken issues a server join token through the CLI.
func (vc *vipCloud) serverJoinToken() string {
	vc.t.Helper()
	var jt api.ServerJoinToken
	if err := json.Unmarshal([]byte(vc.ouro("server", "join-token", "-o", "json")), &jt); err != nil || jt.Token == "" {
		vc.t.Fatalf("server join token: %v (%+v)", err, jt)
	}
	if jt.APIURL != vc.url {
		vc.t.Fatalf("the join token names %s, want the VIP's %s", jt.APIURL, vc.url)
	}
	return jt.Token
}

// servers lists the servers through the CLI.
func (vc *vipCloud) serverList() []api.Server {
	vc.t.Helper()
	out, errOut, err := vc.run(nil, "server", "list", "-o", "json")
	if err != nil {
		return nil
	}
	var l api.ServerList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		vc.t.Fatalf("server list: %v in %q (%s)", err, out, errOut)
	}
	return l.Items
}

// waitServers waits until n servers are members, all ready, and one holds
// the VIP.
func (vc *vipCloud) waitServers(n int) {
	t := vc.t
	t.Helper()
	wait.ForDetail(t, 90*time.Second, fmt.Sprintf("%d servers ready, one holding the VIP", n), func() (bool, string) {
		for _, s := range vc.servers {
			if s.proc.exited() {
				t.Fatalf("%s exited:\n%s", s.name, tail(s.proc.out.String(), 4000))
			}
		}
		l := vc.serverList()
		ready, holders := 0, 0
		for _, s := range l {
			if s.Ready {
				ready++
			}
			if s.HoldsAPIVIP {
				holders++
			}
		}
		return len(l) == n && ready == n && holders == 1, fmt.Sprintf("%+v", l)
	})
}

// holder returns the server holding the VIP, as `ouro server list` says.
func (vc *vipCloud) holder() *vipServer {
	vc.t.Helper()
	for _, s := range vc.serverList() {
		if s.HoldsAPIVIP {
			return vc.server(s.Name)
		}
	}
	vc.t.Fatal("no server holds the API VIP")
	return nil
}

func (vc *vipCloud) server(name string) *vipServer {
	for _, s := range vc.servers {
		if s.name == name {
			return s
		}
	}
	vc.t.Fatalf("no server %q", name)
	return nil
}

// hasVIP reports whether the VIP is on s's interface.
func (vc *vipCloud) hasVIP(s *vipServer) bool {
	out, _ := runIn(s.netns, 10*time.Second, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	return strings.Contains(out, " "+apiVIP+"/")
}

// vipProbe returns a function that sends one request through the VIP on
// a new connection from the cli namespace, as a client that just started
// would.
func (vc *vipCloud) vipProbe(timeout time.Duration) func(ctx context.Context) error {
	tr := vc.netnsTransport().Clone()
	tr.DisableKeepAlives = true
	cl, err := client.New(client.Config{Server: vc.url, Token: vc.admin,
		HTTPClient: &http.Client{Transport: tr, Timeout: timeout}})
	if err != nil {
		vc.t.Fatal(err)
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := cl.Whoami(ctx)
		return err
	}
}
