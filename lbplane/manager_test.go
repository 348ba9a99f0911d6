package lbplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/lbplane/haproxy"
	"github.com/ouroboros-cloud/ouro/lbplane/keepalived"
	"github.com/ouroboros-cloud/ouro/lbplane/nstest"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
	"github.com/ouroboros-cloud/ouro/netplane/process"
)

const vip = "10.77.0.100"

// site is a LAN with members m1..m3 (10.77.0.21-23:8080), a client
// (10.77.0.5) and load balancer namespaces (10.77.0.10, .11...).
type site struct {
	lan     *nstest.LAN
	client  string
	members []*nstest.Member
	lbNS    map[string]string // by host name
}

func newSite(t *testing.T, hosts ...string) *site {
	t.Helper()
	s := &site{lan: nstest.NewLAN(t), lbNS: map[string]string{}}
	s.client = s.lan.Attach("client", "10.77.0.5/24")
	for i := 1; i <= 3; i++ {
		m := &nstest.Member{Name: fmt.Sprintf("m%d", i)}
		ns := s.lan.Attach(m.Name, fmt.Sprintf("10.77.0.2%d/24", i))
		m.Serve(t, ns, fmt.Sprintf("10.77.0.2%d:8080", i))
		s.members = append(s.members, m)
	}
	for i, h := range hosts {
		s.lbNS[h] = s.lan.Attach(h, fmt.Sprintf("10.77.0.1%d/24", i))
	}
	return s
}

// manager returns a Manager of host h whose files are in dir.
func (s *site) manager(t *testing.T, h, dir string, ann Announcer) *Manager {
	t.Helper()
	return New(Config{
		Dir:       dir,
		NetNSPath: func(string) string { return s.lbNS[h] },
		Announcer: ann,
		Interval:  100 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// run runs m's refresh loop until the test ends or stop is called.
func run(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func lbSpec(members ...api.HostLBMember) api.HostLoadBalancer {
	return api.HostLoadBalancer{
		UID: "lb0001", Name: "web", Project: "p", VIP: vip, Address: "10.77.0.10", Prefix: 24,
		DrainTimeoutSeconds: 5,
		Listeners:           []api.Listener{{Name: "web", Protocol: api.ListenerHTTP, Port: 80, DefaultPool: "default"}},
		Pools: []api.HostLBPool{{Name: "default",
			HealthMonitor: api.HealthMonitor{Type: api.MonitorHTTP, Path: "/health", IntervalMillis: 200, Rise: 2, Fall: 2},
			Members:       members}},
	}
}

func member(i int, draining bool) api.HostLBMember {
	return api.HostLBMember{Name: fmt.Sprintf("uid-%d", i), Instance: fmt.Sprintf("m%d", i),
		Address: fmt.Sprintf("10.77.0.2%d", i), Port: 8080, Weight: 1, Draining: draining}
}

func apply(t *testing.T, m *Manager, lbs ...api.HostLoadBalancer) []api.HostLBStatus {
	t.Helper()
	st, err := m.Apply(context.Background(), lbs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// memberStatus finds a member's status in the manager's last refresh.
func memberStatus(m *Manager, name string) (api.HostLBMemberStatus, bool) {
	for _, st := range m.Statuses() {
		for _, ms := range st.Members {
			if ms.Name == name {
				return ms, true
			}
		}
	}
	return api.HostLBMemberStatus{}, false
}

func masterAndWorkers(t *testing.T, dir, ns string) (int, []int) {
	t.Helper()
	p := haproxy.Proxy{Dir: filepath.Join(dir, "lb0001"), NetNS: ns}
	pid, ok := p.Running()
	if !ok {
		t.Fatal("haproxy not running")
	}
	ws, err := p.Workers()
	if err != nil {
		t.Fatal(err)
	}
	return pid, ws
}

func TestManagerLifecycle(t *testing.T) {
	s := newSite(t, "lb-a")
	dir := t.TempDir()
	m := s.manager(t, "lb-a", dir, nil)
	// The test LAN loses the first packets on its new links (about a
	// second): warm it up so that the timing below is the load
	// balancer's.
	c := nstest.Client(s.client)
	wait.For(t, 5*time.Second, "the LAN forwards", func() bool {
		_, err := nstest.Get(c, "http://10.77.0.21:8080/")
		return err == nil
	})
	created := time.Now()
	st := apply(t, m, lbSpec(member(1, false), member(2, false), member(3, false)))
	if len(st) != 1 || !st[0].Ready || !st[0].Active {
		t.Fatalf("status after apply: %+v", st)
	}
	seen := map[string]time.Duration{}
	wait.For(t, 5*time.Second, "round robin reaches every member", func() bool {
		body, err := nstest.Get(c, "http://"+vip+"/")
		if err == nil {
			if _, ok := seen[body]; !ok {
				seen[body] = time.Since(created)
			}
		}
		return len(seen) == 3
	})
	t.Logf("create → every member served: %v", time.Since(created).Round(time.Millisecond))
	stop := run(t, m)
	wait.For(t, 3*time.Second, "members reported up", func() bool {
		ms, _ := memberStatus(m, "uid-3")
		return ms.Health == api.HealthUp
	})

	// Adoption: a new manager on the same directory keeps the processes.
	master, workers := masterAndWorkers(t, dir, s.lbNS["lb-a"])
	m2 := s.manager(t, "lb-a", dir, nil)
	if st := apply(t, m2, lbSpec(member(1, false), member(2, false), member(3, false))); !st[0].Ready {
		t.Fatalf("adopted: %+v", st)
	}
	if p, w := masterAndWorkers(t, dir, s.lbNS["lb-a"]); p != master || !slices.Equal(w, workers) {
		t.Errorf("adoption restarted haproxy: master %d→%d workers %v→%v", master, p, workers, w)
	}

	// Draining: reported drained once no session is left.
	apply(t, m, lbSpec(member(1, false), member(2, true), member(3, false)))
	wait.For(t, 3*time.Second, "m2 drained", func() bool {
		ms, _ := memberStatus(m, "uid-2")
		return ms.Drained
	})

	// Repair after kill -9 of the master (its workers follow it).
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wait.For(t, 10*time.Second, "haproxy restarted and serving", func() bool {
		p := haproxy.Proxy{Dir: filepath.Join(dir, "lb0001"), NetNS: s.lbNS["lb-a"]}
		pid, ok := p.Running()
		if !ok || pid == master {
			return false
		}
		_, err := nstest.Get(c, "http://"+vip+"/")
		return err == nil
	})
	t.Logf("kill -9 of haproxy → serving again: %v", time.Since(killed).Round(time.Millisecond))

	// Teardown: a manager (of a restarted agent) that finds the
	// directory without the load balancer in its spec removes everything.
	stop()
	m3 := s.manager(t, "lb-a", dir, nil)
	apply(t, m3)
	if pids := slices.Concat(process.Scan(haproxy.Binary, dir), process.Scan(keepalived.Binary, dir)); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("files left: %v", entries)
	}

	// A process whose directory was removed under it goes too.
	apply(t, m3, lbSpec(member(1, false)))
	pid, _ := masterAndWorkers(t, dir, s.lbNS["lb-a"])
	if err := os.RemoveAll(filepath.Join(dir, "lb0001")); err != nil {
		t.Fatal(err)
	}
	apply(t, s.manager(t, "lb-a", dir, nil))
	if !process.Gone(pid) {
		t.Errorf("haproxy %d of a removed directory still runs", pid)
	}
	if pids := process.Scan(haproxy.Binary, dir); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
}

// announcements records SetLBActive calls.
type announcements struct {
	mu     sync.Mutex
	active map[string]bool
}

func (a *announcements) SetLBActive(uid string, active bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active == nil {
		a.active = map[string]bool{}
	}
	a.active[uid] = active
	return nil
}

func (a *announcements) get(uid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.active[uid]
}

func TestManagerFailover(t *testing.T) {
	s := newSite(t, "lb-a", "lb-b")
	hosts := []string{"lb-a", "lb-b"}
	mgr := map[string]*Manager{}
	stop := map[string]func(){}
	specs := map[string]api.HostLoadBalancer{}
	ann := map[string]*announcements{}
	dirs := map[string]string{}
	for i, h := range hosts {
		dirs[h], ann[h] = t.TempDir(), &announcements{}
		mgr[h] = s.manager(t, h, dirs[h], ann[h])
		lb := lbSpec(member(1, false), member(2, false), member(3, false))
		lb.Address, lb.Peer = fmt.Sprintf("10.77.0.1%d", i), fmt.Sprintf("10.77.0.1%d", 1-i)
		lb.Priority, lb.VRID = 200-50*i, 51
		specs[h] = lb
		apply(t, mgr[h], lb)
		stop[h] = run(t, mgr[h])
		// The host's running manager stops first: it would restart the
		// HAProxy the cleanup stops.
		t.Cleanup(func() {
			stop[h]()
			s.manager(t, h, dirs[h], nil).Apply(context.Background(), nil)
		})
	}
	active := func() []string {
		var out []string
		for _, h := range hosts {
			if ok, _ := keepalived.HasVIP(s.lbNS[h], vip); ok {
				out = append(out, h)
			}
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range hosts {
				out, _ := netns.Run(s.lbNS[h], "", "ip", "-br", "addr")
				t.Logf("%s: %s keepalived %v haproxy %v", h, out, process.Scan(keepalived.Binary, dirs[h]), process.Scan(haproxy.Binary, dirs[h]))
			}
			_, err := nstest.Get(nstest.Client(s.client), "http://"+vip+"/")
			t.Logf("get: %v", err)
		}
	})
	wait.For(t, 5*time.Second, "lb-a (priority 200) holds the VIP", func() bool {
		a := active()
		return len(a) == 1 && a[0] == "lb-a" && ann["lb-a"].get("lb0001") && !ann["lb-b"].get("lb0001")
	})
	c := nstest.Client(s.client)
	wait.For(t, 5*time.Second, "serving through the VIP", func() bool {
		_, err := nstest.Get(c, "http://"+vip+"/")
		return err == nil
	})

	// failover kills what kill finds of host from, and measures until a
	// new connection through the VIP succeeds on host to.
	failover := func(what, from, to string, kill func(), repaired bool) {
		t.Helper()
		start := time.Now()
		kill()
		short := nstest.Client(s.client)
		short.Timeout = 300 * time.Millisecond
		wait.For(t, 10*time.Second, "VIP on "+to, func() bool {
			if ok, _ := keepalived.HasVIP(s.lbNS[to], vip); !ok {
				return false
			}
			_, err := nstest.Get(short, "http://"+vip+"/")
			return err == nil
		})
		t.Logf("%s killed on %s → served by %s: %v", what, from, to, time.Since(start).Round(time.Millisecond))
		if !repaired {
			return
		}
		// The killed host is repaired (by a new agent, when the agent was
		// killed too) and stays backup (nopreempt).
		if mgr[from] == nil {
			mgr[from] = s.manager(t, from, dirs[from], ann[from])
			apply(t, mgr[from], specs[from])
			stop[from] = run(t, mgr[from])
		}
		wait.For(t, 10*time.Second, from+" ready again", func() bool {
			st := mgr[from].Statuses()
			return len(st) == 1 && st[0].Ready && !st[0].Active
		})
		wait.For(t, 3*time.Second, "announced", func() bool {
			return ann[to].get("lb0001") && !ann[from].get("lb0001")
		})
	}
	killAll := func(program, dir string) func() {
		return func() {
			for _, pid := range process.Scan(program, dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// HAProxy and the agent die: keepalived's check gives the VIP up (a
	// running agent would restart HAProxy first).
	failover("haproxy and agent", "lb-a", "lb-b", func() {
		stop["lb-a"]()
		mgr["lb-a"] = nil
		killAll(haproxy.Binary, dirs["lb-a"])()
	}, true)
	// keepalived dies: the peer takes over when adverts stop, and the
	// agent removes the VIP the killed keepalived left before restarting
	// it.
	failover("keepalived", "lb-b", "lb-a", killAll(keepalived.Binary, dirs["lb-b"]), true)
	// A link cut (a power cut of the host as the network sees it): the
	// host cut off holds the VIP too, but nobody reaches it.
	failover("link", "lb-a", "lb-b", func() { s.lan.Cut(s.lbNS["lb-a"], true) }, false)
}
