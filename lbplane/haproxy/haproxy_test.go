package haproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testcert"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/lbplane/nstest"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
	"github.com/ouroboros-cloud/ouro/netplane/process"
)

// rig is a load balancer namespace in front of three members.
type rig struct {
	lan     *nstest.LAN
	lbNS    string
	client  string
	members []*nstest.Member
	proxy   Proxy
}

const vip = "10.77.0.100"

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{lan: nstest.NewLAN(t)}
	r.lbNS = r.lan.Attach("lb", "10.77.0.10/24")
	if _, err := netns.Run(r.lbNS, "", "ip", "addr", "add", vip+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	r.client = r.lan.Attach("client", "10.77.0.5/24")
	for i := 1; i <= 3; i++ {
		m := &nstest.Member{Name: fmt.Sprintf("m%d", i)}
		ns := r.lan.Attach(m.Name, fmt.Sprintf("10.77.0.2%d/24", i))
		m.Serve(t, ns, fmt.Sprintf("10.77.0.2%d:8080", i))
		r.members = append(r.members, m)
	}
	r.proxy = Proxy{Dir: filepath.Join(t.TempDir(), "lb"), NetNS: r.lbNS}
	t.Cleanup(func() {
		if err := r.proxy.Stop(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func member(i, weight int) api.HostLBMember {
	return api.HostLBMember{Name: fmt.Sprintf("uid-%d", i), Instance: fmt.Sprintf("m%d", i), Address: fmt.Sprintf("10.77.0.2%d", i), Port: 8080, Weight: weight}
}

func spec(listeners []api.Listener, members ...api.HostLBMember) api.HostLoadBalancer {
	return api.HostLoadBalancer{
		UID: "lb-1", VIP: vip, Address: "10.77.0.10", Prefix: 24,
		Listeners: listeners,
		Pools: []api.HostLBPool{{Name: "default", Algorithm: api.AlgorithmRoundRobin,
			HealthMonitor: api.HealthMonitor{Type: api.MonitorHTTP, Path: "/health", IntervalMillis: 200, Rise: 2, Fall: 2},
			Members:       members}},
	}
}

var http80 = api.Listener{Name: "web", Protocol: api.ListenerHTTP, Port: 80, DefaultPool: "default"}

func (r *rig) ensure(t *testing.T, lb api.HostLoadBalancer) Result {
	t.Helper()
	l, err := NewLayout(lb, r.proxy.Dir)
	if err != nil {
		t.Fatal(err)
	}
	ms := map[string][]Member{}
	for _, p := range lb.Pools {
		ms[p.Name] = Members(p)
	}
	res, err := r.proxy.Ensure(l, ms)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (r *rig) server(t *testing.T, name string) (Server, bool) {
	t.Helper()
	ss, err := r.proxy.Runtime().Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Name == ServerName(name) {
			return s, true
		}
	}
	return Server{}, false
}

// processes returns the master pid and its current workers.
func (r *rig) processes(t *testing.T) (int, []int) {
	t.Helper()
	pid, ok := r.proxy.Running()
	if !ok {
		t.Fatal("haproxy is not running")
	}
	ws, err := r.proxy.Workers()
	if err != nil {
		t.Fatal(err)
	}
	return pid, ws
}

func TestProxyMembersWithoutReload(t *testing.T) {
	r := newRig(t)
	c := nstest.Client(r.client)
	if res := r.ensure(t, spec([]api.Listener{http80}, member(1, 1), member(2, 1))); !res.Started {
		t.Fatalf("first ensure: %+v", res)
	}
	seen := map[string]bool{}
	wait.For(t, 5*time.Second, "round robin reaches m1 and m2", func() bool {
		body, err := nstest.Get(c, "http://"+vip+"/")
		if err == nil {
			seen[body] = true
		}
		return seen["m1"] && seen["m2"]
	})
	master, workers := r.processes(t)

	// A new member starts down and serves once its checks pass.
	res := r.ensure(t, spec([]api.Listener{http80}, member(1, 1), member(2, 1), member(3, 1)))
	if res.Started || res.Reloaded {
		t.Fatalf("adding a member: %+v", res)
	}
	if s, _ := r.server(t, "uid-3"); Health(s.Status) == api.HealthUp {
		t.Errorf("new member is %q before its checks passed", s.Status)
	}
	added := time.Now()
	wait.For(t, 5*time.Second, "m3 up", func() bool {
		s, _ := r.server(t, "uid-3")
		return Health(s.Status) == api.HealthUp
	})
	t.Logf("new member up after %v (rise 2 × inter 200ms)", time.Since(added).Round(time.Millisecond))
	wait.For(t, 5*time.Second, "m3 reached", func() bool {
		body, _ := nstest.Get(c, "http://"+vip+"/")
		return body == "m3"
	})

	// A sick member goes down within fall × inter (plus one check).
	r.members[0].Sick.Store(true)
	sick := time.Now()
	wait.For(t, 3*time.Second, "m1 down", func() bool {
		s, _ := r.server(t, "uid-1")
		return Health(s.Status) == api.HealthDown
	})
	t.Logf("sick member down after %v (fall 2 × inter 200ms)", time.Since(sick).Round(time.Millisecond))
	r.members[0].Sick.Store(false)

	// Reweight and drain: a draining member gets no new connection.
	r.ensure(t, spec([]api.Listener{http80}, member(1, 5), func() api.HostLBMember { m := member(2, 1); m.Draining = true; return m }(), member(3, 1)))
	s1, _ := r.server(t, "uid-1")
	s2, _ := r.server(t, "uid-2")
	if s1.Weight != 5 || !s2.Draining() || s2.Sessions != 0 {
		t.Errorf("after reweight and drain: m1 %+v, m2 %+v", s1, s2)
	}
	hits := r.members[1].Hits.Load()
	for range 20 {
		nstest.Get(c, "http://"+vip+"/")
	}
	if n := r.members[1].Hits.Load(); n != hits {
		t.Errorf("draining member got %d new requests", n-hits)
	}

	// Removal.
	r.ensure(t, spec([]api.Listener{http80}, member(1, 5), member(3, 1)))
	if _, ok := r.server(t, "uid-2"); ok {
		t.Error("removed member still a server")
	}
	m2, w2 := r.processes(t)
	if m2 != master || !slices.Equal(w2, workers) {
		t.Errorf("processes changed without a reload: master %d→%d, workers %v→%v", master, m2, workers, w2)
	}
}

func TestProxyHitlessReload(t *testing.T) {
	r := newRig(t)
	// Checks that tolerate a loaded machine (a 1 s timeout, 3 failures to
	// fall): what is tested is that the reloads keep the states, which a
	// fresh worker would not (it starts every member up).
	lenient := func(listeners ...api.Listener) api.HostLoadBalancer {
		lb := spec(listeners, member(1, 1), member(2, 1))
		lb.Pools[0].HealthMonitor = api.HealthMonitor{Type: api.MonitorHTTP, Path: "/health", IntervalMillis: 1000, Rise: 2, Fall: 3}
		return lb
	}
	r.ensure(t, lenient(http80))
	c := nstest.Client(r.client)
	wait.For(t, 5*time.Second, "serving", func() bool {
		_, err := nstest.Get(c, "http://"+vip+"/")
		return err == nil
	})
	// Both members up first: the first checks, sent while the links
	// come up, may fail.
	wait.For(t, 15*time.Second, "m1 and m2 up", func() bool {
		s1, _ := r.server(t, "uid-1")
		s2, _ := r.server(t, "uid-2")
		return Health(s1.Status) == api.HealthUp && Health(s2.Status) == api.HealthUp
	})
	// m2 is sick and down before the reloads.
	r.members[1].Sick.Store(true)
	wait.For(t, 10*time.Second, "m2 down", func() bool {
		s, _ := r.server(t, "uid-2")
		return Health(s.Status) == api.HealthDown
	})
	master, workers := r.processes(t)

	ctx, cancel := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := nstest.Get(c, "http://"+vip+"/"); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for i := range 3 {
		tcp := api.Listener{Name: "tcp", Protocol: api.ListenerTCP, Port: 9000 + i, DefaultPool: "default"}
		start := time.Now()
		if res := r.ensure(t, lenient(http80, tcp)); !res.Reloaded {
			t.Fatalf("listener change: %+v", res)
		}
		t.Logf("reload %d took %v", i, time.Since(start).Round(time.Millisecond))
	}
	cancel()
	wg.Wait()
	t.Logf("during 3 reloads: %d requests, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d requests failed during reloads, first: %v", failed.Load(), firstErr.Load())
	}
	m2, w2 := r.processes(t)
	if m2 != master || slices.Equal(w2, workers) {
		t.Errorf("reload: master %d→%d, workers %v→%v", master, m2, workers, w2)
	}
	// Members keep their health across a reload: the sick one is still
	// down (a fresh worker would have it up until three checks failed).
	if s, _ := r.server(t, "uid-1"); Health(s.Status) != api.HealthUp {
		t.Errorf("m1 after reload: %q", s.Status)
	}
	if s, _ := r.server(t, "uid-2"); Health(s.Status) != api.HealthDown {
		t.Errorf("sick m2 after reload: %q, want it still down", s.Status)
	}
	body, err := nstest.Get(c, "http://"+vip+":9002/")
	if err != nil || !strings.HasPrefix(body, "m") {
		t.Errorf("new tcp listener: %q %v", body, err)
	}
	if err := r.proxy.Stop(); err != nil {
		t.Fatal(err)
	}
	if pids := process.Scan(Binary, r.proxy.Dir); len(pids) > 0 {
		t.Errorf("processes left after stop: %v", pids)
	}
}

func TestProxyDrainCountsSessions(t *testing.T) {
	r := newRig(t)
	tcp := api.Listener{Name: "tcp", Protocol: api.ListenerTCP, Port: 9000, DefaultPool: "default"}
	r.ensure(t, spec([]api.Listener{tcp}, member(1, 1)))
	wait.For(t, 5*time.Second, "m1 up", func() bool {
		s, _ := r.server(t, "uid-1")
		return s.Status == "UP"
	})
	// An open connection through the load balancer to m1.
	var conn net.Conn
	wait.For(t, 5*time.Second, "a connection to m1", func() bool {
		err := netns.Do(r.client, func() error {
			var err error
			conn, err = net.DialTimeout("tcp", vip+":9000", time.Second)
			return err
		})
		if err != nil {
			return false
		}
		if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil { // unfinished: stays open
			conn.Close()
			return false
		}
		return true
	})
	defer conn.Close()
	drain := member(1, 1)
	drain.Draining = true
	r.ensure(t, spec([]api.Listener{tcp}, drain))
	wait.For(t, 3*time.Second, "one session on the draining member", func() bool {
		s, _ := r.server(t, "uid-1")
		return s.Draining() && s.Sessions == 1
	})
	conn.Close()
	wait.For(t, 3*time.Second, "no session left", func() bool {
		s, _ := r.server(t, "uid-1")
		return s.Sessions == 0
	})
}

func TestProxyHTTPSAndRules(t *testing.T) {
	r := newRig(t)
	cert, key := testcert.Pair(t, "lb.test")
	hm := api.HealthMonitor{Type: api.MonitorHTTP, Path: "/health", IntervalMillis: 200}
	rules := []api.ListenerRule{{PathPrefix: "/b", Pool: "b"}, {Host: "c.test", Pool: "c"}}
	lb := api.HostLoadBalancer{UID: "lb-1", VIP: vip, Address: "10.77.0.10", Prefix: 24,
		Listeners: []api.Listener{
			{Name: "web", Protocol: api.ListenerHTTP, Port: 80, DefaultPool: "a", Rules: rules},
			{Name: "tls", Protocol: api.ListenerHTTPS, Port: 443, DefaultPool: "a", Rules: rules, Certificate: cert, Key: key},
		},
		Pools: []api.HostLBPool{
			{Name: "a", HealthMonitor: hm, Members: []api.HostLBMember{member(1, 1)}},
			{Name: "b", HealthMonitor: hm, Members: []api.HostLBMember{member(2, 1)}},
			{Name: "c", HealthMonitor: hm, Members: []api.HostLBMember{member(3, 1)}},
		}}
	r.ensure(t, lb)
	c := nstest.Client(r.client)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	for _, tc := range []struct{ url, host, want string }{
		{"http://" + vip + "/", "", "m1"},
		{"http://" + vip + "/b/x", "", "m2"},
		{"http://" + vip + "/", "c.test:80", "m3"},
		{"https://" + vip + "/", "", "m1"},
		{"https://" + vip + "/b", "", "m2"},
		{"https://" + vip + "/", "c.test", "m3"},
	} {
		wait.For(t, 5*time.Second, tc.url+" "+tc.host+" reaches "+tc.want, func() bool {
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := c.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b) == tc.want
		})
	}
}
