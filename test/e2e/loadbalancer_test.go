package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// vipAddr returns VIP:80, the load balancer's listener.
func vipAddr(lb *api.LoadBalancer) string { return net.JoinHostPort(lb.Status.VIP, "80") }

// TestLBGroup puts a group of 3 web members behind a load balancer with
// one host: a client on the network reaches all three; a member whose
// health endpoint fails leaves the pool and comes back when it is fixed; a
// rolling update and scaling out and in under a steady load fail no
// request.
func TestLBGroup(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.killLBLeftovers()
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "3",
		"--anti-affinity", "soft", "--"}, lbWebCommand()...)...)
	nc.waitMembersRunning("web", 3)
	nc.create(vm{name: "client"})
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	nc.ouro(lbCreateArgs("web", "default", "--group", "web", "--wait")...)
	lb := nc.waitLBActive("", "web")
	t.Logf("lb create --wait → Active: %v", time.Since(start).Round(10*time.Millisecond))
	if len(lb.Status.Hosts) != 1 || lb.Status.NetworkUID == "" {
		t.Fatalf("one LB host on the network expected: %s", describeLB(lb))
	}
	if a, err := netip.ParseAddr(lb.Status.VIP); err != nil || !netip.MustParsePrefix("172.31.0.0/20").Contains(a) {
		t.Fatalf("VIP %q is not an address of the default network", lb.Status.VIP)
	}
	lb = nc.waitMembersUp("", "web", 30*time.Second, "web-0", "web-1", "web-2")
	waitAnswers(t, client, vipAddr(lb), 30*time.Second, "web-0", "web-1", "web-2")
	t.Logf("lb create → all three members answering: %v", time.Since(start).Round(10*time.Millisecond))
	holder := nc.vipHolder(lb)
	if h, k := lbProcs(holder, lb.Metadata.UID); len(h) == 0 || len(k) != 0 {
		t.Errorf("on %s: haproxy %v keepalived %v; want haproxy and, with one host, no keepalived", holder.name, h, k)
	}

	// A sick member leaves the pool, and returns when it is well again.
	load := startLoad(t, client, vipAddr(lb), 1, 2*time.Second)
	sick := time.Now()
	if out, err := nc.exec("", "web-1", "rm", "/www/healthz"); err != nil {
		t.Fatalf("rm /www/healthz in web-1: %v: %s", err, out)
	}
	execTook := time.Since(sick)
	nc.waitLB("", "web", 30*time.Second, "web-1 down", func(lb *api.LoadBalancer) bool {
		h := memberHealth(lb)
		return h["web-1"] == api.HealthDown && h["web-0"] == api.HealthUp && h["web-2"] == api.HealthUp
	})
	downInStatus := time.Since(sick)
	// Out of rotation: 30 answers in a row without web-1.
	var lastSick time.Time
	wait.ForDetail(t, 30*time.Second, "web-1 out of rotation", func() (bool, string) {
		as := load.answersSince(sick)
		lastSick = time.Time{}
		after := 0
		for _, a := range as {
			if a.body == "web-1" {
				lastSick, after = a.at, 0
			} else {
				after++
			}
		}
		return after >= 30, fmt.Sprintf("%d answers since the last from web-1", after)
	})
	out := sick
	if !lastSick.IsZero() {
		out = lastSick
	}
	t.Logf("health of web-1 broken (ouro instance exec took %v) → last answer from it after %v; shown down in status after %v",
		execTook.Round(10*time.Millisecond), out.Sub(sick).Round(10*time.Millisecond), downInStatus.Round(10*time.Millisecond))
	// The file went some time during the exec: the target counts from its
	// end at the earliest.
	if d := out.Sub(sick) - execTook; d > 3*time.Second {
		t.Errorf("a sick member stayed in rotation for %v after its health broke (target ≤ 3 s)", d)
	}
	var shown bool
	for _, m := range nc.lbMembersCLI("", "web") {
		if m.Instance == "web-1" && m.Health == api.HealthDown {
			shown = true
		}
	}
	if table := nc.ouro("lb", "members", "web"); !shown || !strings.Contains(table, "down") || !strings.Contains(table, "HEALTH") {
		t.Errorf("lb members does not show web-1 down:\n%s", table)
	}
	if out, err := nc.exec("", "web-1", "sh", "-c", "echo ok > /www/healthz"); err != nil {
		t.Fatalf("restore /www/healthz in web-1: %v: %s", err, out)
	}
	well := time.Now()
	nc.waitMembersUp("", "web", 30*time.Second, "web-0", "web-1", "web-2")
	wait.ForDetail(t, 30*time.Second, "web-1 back in rotation", func() (bool, string) {
		return slices.Contains(names(load.answersSince(well)), "web-1"), fmt.Sprint(names(load.answersSince(well)))
	})
	t.Logf("web-1 well again → answering again after %v", time.Since(well).Round(10*time.Millisecond))
	load.stop()
	nc.waitEvents("web-1 down and up", "MemberDown", "MemberUp", "web-1")

	// A rolling update under load: no request fails. The group trusts the
	// load balancer's checks, so that a new member counts as available
	// only once the load balancer sends to it (docs/loadbalancers.md).
	nc.ouro("group", "update", "web", "--health", "lb:web")
	load = startLoad(t, client, vipAddr(lb), 2, 5*time.Second)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	start = time.Now()
	nc.ouro("group", "update", "web", "--env", "REVISION=2")
	nc.ouro("group", "rollout", "status", "web", "--watch", "--timeout", "4m")
	ms := nc.waitMembersRunning("web", 3)
	var want []string
	for n := range ms {
		want = append(want, n)
	}
	nc.waitMembersUp("", "web", 60*time.Second, want...)
	waitAnswers(t, client, vipAddr(lb), 30*time.Second, want...)
	t.Logf("rolling update to revision 2 with the load balancer in front: %v", time.Since(start).Round(10*time.Millisecond))
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	load.expectNoFailure(t, "rolling update")

	// Scaling out and in under load: no request fails either.
	load = startLoad(t, client, vipAddr(lb), 2, 5*time.Second)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	nc.ouro("group", "scale", "web", "5")
	ms = nc.waitMembersRunning("web", 5)
	want = want[:0]
	for n := range ms {
		want = append(want, n)
	}
	nc.waitMembersUp("", "web", 60*time.Second, want...)
	wait.ForDetail(t, 30*time.Second, "every one of 5 members answering under load", func() (bool, string) {
		got := names(load.answersSince(start))
		return len(got) >= 5, fmt.Sprint(got)
	})
	start = time.Now()
	nc.ouro("group", "scale", "web", "2")
	ms = nc.waitMembersRunning("web", 2)
	want = want[:0]
	for n := range ms {
		want = append(want, n)
	}
	nc.waitMembersUp("", "web", 90*time.Second, want...)
	t.Logf("scale 5 → 2 until the load balancer lists only the 2: %v", time.Since(start).Round(10*time.Millisecond))
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	if got := names(load.answersSince(time.Now().Add(-500 * time.Millisecond))); len(got) > 2 {
		t.Errorf("after scaling in to %v, answers still come from %v", want, got)
	}
	load.expectNoFailure(t, "scale 3 → 5 → 2")

	// With the load balancer's checks as its health check, the group
	// replaces a member the load balancer finds sick.
	load = startLoad(t, client, vipAddr(lb), 2, 5*time.Second)
	sickName := want[0]
	sickUID := ms[sickName].Metadata.UID
	start = time.Now()
	if out, err := nc.exec("", sickName, "rm", "/www/healthz"); err != nil {
		t.Fatalf("rm /www/healthz in %s: %v: %s", sickName, err, out)
	}
	var fresh []string
	wait.ForDetail(t, 2*time.Minute, sickName+" replaced", func() (bool, string) {
		items, err := nc.groupInstances("web")
		if err != nil {
			return false, err.Error()
		}
		fresh = fresh[:0]
		var desc []string
		for _, in := range items {
			desc = append(desc, fmt.Sprintf("%s %s %s", in.Metadata.Name, in.Metadata.UID, in.Status.Phase))
			if in.Metadata.UID == sickUID {
				return false, strings.Join(desc, ", ")
			}
			fresh = append(fresh, in.Metadata.Name)
		}
		return len(fresh) == 2, strings.Join(desc, ", ")
	})
	nc.waitMembersUp("", "web", 60*time.Second, fresh...)
	t.Logf("%s found sick by the load balancer → replaced, its replacement up: %v", sickName, time.Since(start).Round(10*time.Millisecond))
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	load.expectNoFailure(t, "a sick member replaced")
}

// TestLBFailover runs a load balancer on two hosts, active and standby, and
// cuts the power of the active one under a steady load: new connections
// succeed again, through the standby, within the measured failover time;
// when the host returns, both serve again.
func TestLBFailover(t *testing.T) {
	nc, lb, client := newFailoverLB(t)
	load := startLoad(t, client, vipAddr(lb), 4, 300*time.Millisecond)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)

	d, dead := cutActiveLBHost(t, nc, lb, load)
	t.Logf("power cut of the active LB host %s → first new connection answered after %v", dead.name, d.Round(time.Millisecond))
	lb = nc.waitLB("", "web", 60*time.Second, "the other host active", func(lb *api.LoadBalancer) bool {
		for _, h := range lb.Status.Hosts {
			if h.Name != dead.name && h.Active {
				return true
			}
		}
		return false
	})
	nc.vipHolder(lb, dead)
	nc.waitEvents("the active host changed", "ActiveHostChanged")
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)
	// Once the host is lost (its lease ran out), the load balancer says
	// so: Degraded, the dead host not ready. Nowhere to move it: h3 is
	// cordoned.
	lb = nc.waitLB("", "web", 60*time.Second, "Degraded, "+dead.name+" not ready", func(lb *api.LoadBalancer) bool {
		for _, h := range lb.Status.Hosts {
			if h.Name == dead.name && !h.Ready {
				return lb.Status.Phase == api.LBDegraded
			}
		}
		return false
	})
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)

	// The host comes back: its agent repairs its haproxy and keepalived,
	// and both hosts are ready again; no request fails meanwhile.
	back := time.Now()
	nc.lbPowerBack(dead)
	lb = nc.waitLBActive("", "web")
	if h, k := lbProcs(dead, lb.Metadata.UID); len(h) == 0 || len(k) == 0 {
		t.Errorf("on %s after its return: haproxy %v keepalived %v", dead.name, h, k)
	}
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)
	load.stop()
	if n := load.failedSince(back); n > 0 {
		t.Errorf("%d requests failed after %s came back", n, dead.name)
	}
}

// newFailoverLB builds a cloud of 3 hosts: a group of 2 web members and a
// client instance on h3, and a load balancer "web" on h1 and h2
// (active/standby), created with the extra arguments (a floating IP pool
// "ext" exists for --fip). h3 stays cordoned so that the load balancer
// never moves there. It returns the cloud, the Active load balancer with
// its members up, and the client's namespace.
func newFailoverLB(tb testing.TB, extra ...string) (*netCloud, *api.LoadBalancer, string) {
	tb.Helper()
	nc := newNetCloud(tb, 3)
	nc.killLBLeftovers()
	nc.ouro("fip", "pool", "create", "ext", "--cidr", underlayCIDR, "--range", "10.99.0.200-10.99.0.250")
	uncordon := nc.cordonAllBut("h3")
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "2", "--"}, lbWebCommand()...)...)
	nc.waitMembersRunning("web", 2)
	nc.create(vm{name: "client"})
	uncordon()
	nc.setUnschedulable("h3", true)
	nc.ouro(lbCreateArgs("web", "default", append([]string{"--group", "web", "--hosts", "2", "--wait"}, extra...)...)...)
	lb := nc.waitLBActive("", "web")
	if len(lb.Status.Hosts) != 2 || lb.Status.Hosts[0].Name == lb.Status.Hosts[1].Name {
		tb.Fatalf("want two distinct LB hosts: %s", describeLB(lb))
	}
	for _, h := range lb.Status.Hosts {
		if h.Name == "h3" {
			tb.Fatalf("the load balancer is on the cordoned h3: %s", describeLB(lb))
		}
	}
	lb = nc.waitMembersUp("", "web", 30*time.Second, "web-0", "web-1")
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		tb.Fatal(err)
	}
	waitAnswers(tb, client, vipAddr(lb), 30*time.Second, "web-0", "web-1")
	return nc, lb, client
}

// cutActiveLBHost cuts the power of the host holding the VIP while load
// runs and returns the time from the cut until the first answer to a
// request sent after it, and the dead host.
func cutActiveLBHost(tb testing.TB, nc *netCloud, lb *api.LoadBalancer, load *loadGen) (time.Duration, *agentProc) {
	tb.Helper()
	holder := nc.vipHolder(lb)
	for _, h := range lb.Status.Hosts {
		if h.Name == holder.name && !h.Active {
			tb.Logf("status says %s is not active, but it holds the VIP: %s", holder.name, describeLB(lb))
		}
	}
	// The clock starts once the host is all dead: a request sent before
	// may still be answered by it.
	nc.lbPowerCut(holder, lb.Metadata.UID)
	cut := time.Now()
	at := load.firstAnswerSince(tb, cut, 30*time.Second)
	return at.Sub(cut), holder
}

// TestLBFloatingIPFailover: the floating IP of a load balancer on two
// hosts follows its VIP: when the active host's power is cut, outside
// clients reach the load balancer again through the other host.
func TestLBFloatingIPFailover(t *testing.T) {
	nc, lb, _ := newFailoverLB(t, "--fip")
	t.Cleanup(func() {
		if t.Failed() {
			nc.logLBNetwork(lb)
		}
	})
	fip := net.JoinHostPort(lb.Status.FloatingIP, "80")
	if lb.Status.FloatingIP == "" {
		t.Fatalf("no floating IP: %s", describeLB(lb))
	}
	waitAnswers(t, nc.u.outside, fip, 30*time.Second, "web-0", "web-1")
	load := startLoad(t, nc.u.outside, fip, 4, 300*time.Millisecond)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	d, dead := cutActiveLBHost(t, nc, lb, load)
	t.Logf("power cut of the active LB host %s → first new connection from the outside through the floating IP answered after %v",
		dead.name, d.Round(time.Millisecond))
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)
	// The host's return disturbs nothing: the VIP stays where it is
	// (keepalived does not preempt), and so does the floating IP.
	back := time.Now()
	nc.lbPowerBack(dead)
	nc.waitLBActive("", "web")
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)
	load.stop()
	if n := load.failedSince(back); n > 0 {
		_, _, errs := load.counts()
		t.Errorf("%d requests through the floating IP failed after %s came back (first errors of the test: %v)", n, dead.name, errs)
	}
}

// TestLBReplacedWhenHostLost: the host of a load balancer on one host
// loses its power; once the host is lost, the control plane places the
// load balancer on another host, with the same addresses, and it serves
// again. When the host comes back, its agent removes what is left of the
// load balancer there.
func TestLBReplacedWhenHostLost(t *testing.T) {
	nc := newNetCloud(t, 3)
	nc.killLBLeftovers()
	uncordon := nc.cordonAllBut("h3")
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "2", "--"}, lbWebCommand()...)...)
	nc.waitMembersRunning("web", 2)
	nc.create(vm{name: "client"})
	uncordon()
	nc.setUnschedulable("h3", true)
	nc.ouro(lbCreateArgs("web", "default", "--group", "web", "--wait")...)
	lb := nc.waitMembersUp("", "web", 30*time.Second, "web-0", "web-1")
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		t.Fatal(err)
	}
	waitAnswers(t, client, vipAddr(lb), 30*time.Second, "web-0", "web-1")
	first, addr := lb.Status.Hosts[0].Name, lb.Status.Hosts[0].Address
	dead := nc.vipHolder(lb)
	if dead.name != first {
		t.Fatalf("the VIP is on %s, the status says %s", dead.name, first)
	}
	load := startLoad(t, client, vipAddr(lb), 2, 300*time.Millisecond)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)

	nc.lbPowerCut(dead, lb.Metadata.UID)
	cut := time.Now()
	lb = nc.waitLB("", "web", 60*time.Second, "placed on another host", func(lb *api.LoadBalancer) bool {
		return len(lb.Status.Hosts) == 1 && lb.Status.Hosts[0].Name != first && lb.Status.Hosts[0].Ready
	})
	if got := lb.Status.Hosts[0]; got.Name == "h3" || got.Address != addr {
		t.Errorf("re-placed on %s at %s; want the other schedulable host, at the same address %s", got.Name, got.Address, addr)
	}
	at := load.firstAnswerSince(t, cut, 60*time.Second)
	t.Logf("power cut of the only LB host %s → served again from %s after %v", first, lb.Status.Hosts[0].Name, at.Sub(cut).Round(10*time.Millisecond))
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)

	// The lost host returns: what it had of the load balancer goes, and
	// the load balancer stays where it is now.
	nc.lbPowerBack(dead)
	wait.ForDetail(t, 60*time.Second, "nothing left of the load balancer on "+dead.name, func() (bool, string) {
		l := lbLeftovers(dead, lb.Metadata.UID)
		return len(l) == 0, strings.Join(l, "; ")
	})
	load.waitAnswersSince(t, time.Now(), 50, 30*time.Second)
	load.stop()
	if lb, err := nc.lbGet("", "web"); err != nil || len(lb.Status.Hosts) != 1 || lb.Status.Hosts[0].Name == first {
		t.Errorf("after %s returned: %v, %s", first, err, describeLB(lb))
	}
}

// TestLBFloatingIPAndIsolation: a load balancer with a floating IP answers
// the outside through it; its private VIP answers neither the outside nor
// an instance of another project.
func TestLBFloatingIPAndIsolation(t *testing.T) {
	nc := newNetCloud(t, 1)
	nc.killLBLeftovers()
	nc.ouro("fip", "pool", "create", "ext", "--cidr", underlayCIDR, "--range", "10.99.0.200-10.99.0.250")
	nc.create(vm{name: "fweb-a", command: lbWebCommand()})
	nc.create(vm{name: "fweb-b", command: lbWebCommand()})
	nc.ouro(lbCreateArgs("pub", "default", "--instance", "fweb-a", "--instance", "fweb-b", "--fip", "--wait")...)
	lb := nc.waitLBActive("", "pub")
	fip := lb.Status.FloatingIP
	if a, err := netip.ParseAddr(fip); err != nil || a.Less(netip.MustParseAddr("10.99.0.200")) || netip.MustParseAddr("10.99.0.250").Less(a) {
		t.Fatalf("floating IP %q is not in the pool's range: %s", fip, describeLB(lb))
	}
	if lb.Status.FloatingIPPool != "ext" {
		t.Errorf("floating IP pool %q, want ext", lb.Status.FloatingIPPool)
	}
	nc.waitMembersUp("", "pub", 30*time.Second, "fweb-a", "fweb-b")
	waitAnswers(t, nc.u.outside, net.JoinHostPort(fip, "80"), 30*time.Second, "fweb-a", "fweb-b")
	// Only the listener's port: the members' own port is not published.
	if dialable(nc.u.outside, net.JoinHostPort(fip, fmt.Sprint(lbMemberPort)), 2*time.Second) {
		t.Errorf("the outside opens %s:%d, a port no listener has", fip, lbMemberPort)
	}

	// Not the private VIP from the outside, even with a route to it.
	ip(t, nc.u.outside, "route", "add", "172.31.0.0/20", "via", outsideGateway)
	ip(t, nc.u.gateway, "route", "add", "172.31.0.0/20", "via", nc.u.hosts[0].ip)
	if body, err := fetch(nc.u.outside, vipAddr(lb)); err == nil {
		t.Errorf("the outside reaches the private VIP %s: %q", lb.Status.VIP, body)
	}

	// Not the private VIP from another project, whose own network has the
	// same addresses.
	nc.ouro("project", "create", "other")
	nc.create(vm{project: "other", name: "spy"})
	for i := 0; i < 2; i++ {
		if out, err := nc.exec("other", "spy", wgetArgv(vipAddr(lb))...); err == nil {
			t.Fatalf("an instance of project other reaches the VIP %s: %q", lb.Status.VIP, out)
		}
	}
	spy, err := nc.instanceNetns("other", "spy")
	if err != nil {
		t.Fatal(err)
	}
	if dialable(spy, vipAddr(lb), 2*time.Second) {
		t.Errorf("project other opens a connection to %s", vipAddr(lb))
	}
	// While the floating IP, public, answers everyone.
	waitAnswers(t, nc.u.outside, net.JoinHostPort(fip, "80"), 10*time.Second, "fweb-a", "fweb-b")
}

// TestLBAgentRestart kills the agent of the active LB host, not its
// processes: HAProxy serves throughout and is adopted by the agent when it
// returns (same pids). A haproxy killed with SIGKILL is repaired. Deleting
// the load balancer leaves nothing on any host.
func TestLBAgentRestart(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.killLBLeftovers()
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "2", "--"}, lbWebCommand()...)...)
	nc.waitMembersRunning("web", 2)
	nc.create(vm{name: "client"})
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		t.Fatal(err)
	}
	nc.ouro(lbCreateArgs("web", "default", "--group", "web", "--hosts", "2", "--wait")...)
	lb := nc.waitLBActive("", "web")
	lb = nc.waitMembersUp("", "web", 30*time.Second, "web-0", "web-1")
	waitAnswers(t, client, vipAddr(lb), 30*time.Second, "web-0", "web-1")
	uid := lb.Metadata.UID
	// Every host runs the current spec: a change the agent has not
	// applied yet would be applied after its restart, with a reload.
	nc.waitApplied()
	holder := nc.vipHolder(lb)
	type procs struct{ haproxy, keepalived []int }
	before := map[string]procs{}
	for _, a := range nc.hosts {
		h, k := lbProcs(a, uid)
		if len(h) == 0 || len(k) == 0 {
			t.Fatalf("on %s: haproxy %v keepalived %v; want both", a.name, h, k)
		}
		before[a.name] = procs{h, k}
	}

	cfgPath := filepath.Join(lbDir(holder, uid), "haproxy.cfg")
	cfgBefore, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	load := startLoad(t, client, vipAddr(lb), 2, 5*time.Second)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	holder.kill()
	killed := time.Now()
	load.waitAnswersSince(t, killed, 50, 30*time.Second)
	nc.startAgent(holder)
	back := time.Now()
	nc.waitApplied()
	lb = nc.waitLBActive("", "web")
	load.waitAnswersSince(t, back, 50, 30*time.Second)
	for _, a := range nc.hosts {
		h, k := lbProcs(a, uid)
		if !slices.Equal(h, before[a.name].haproxy) || !slices.Equal(k, before[a.name].keepalived) {
			t.Errorf("on %s the processes changed across the agent's restart: haproxy %v → %v, keepalived %v → %v",
				a.name, before[a.name].haproxy, h, before[a.name].keepalived, k)
		}
	}
	if cfgAfter, err := os.ReadFile(cfgPath); err != nil || string(cfgAfter) != string(cfgBefore) {
		t.Errorf("haproxy.cfg on %s changed across the agent's restart (%v):\nbefore:\n%s\nafter:\n%s", holder.name, err, cfgBefore, cfgAfter)
	}
	if !holdsVIP(holder, uid, lb.Status.VIP) {
		t.Errorf("the VIP moved from %s across its agent's restart", holder.name)
	}
	load.expectNoFailure(t, "agent killed and restarted")

	// haproxy killed: the agent starts it again.
	load = startLoad(t, client, vipAddr(lb), 1, 2*time.Second)
	old := before[holder.name].haproxy
	killed = time.Now()
	for _, pid := range old {
		killPid(pid)
	}
	var repaired []int
	wait.ForDetail(t, 60*time.Second, "haproxy repaired on "+holder.name, func() (bool, string) {
		h, _ := lbProcs(holder, uid)
		repaired = h
		return len(h) > 0 && !slices.ContainsFunc(h, func(p int) bool { return slices.Contains(old, p) }), fmt.Sprintf("haproxy %v", h)
	})
	t.Logf("haproxy killed on %s → running again after %v (pids %v → %v)", holder.name,
		time.Since(killed).Round(10*time.Millisecond), old, repaired)
	lb = nc.waitLBActive("", "web")
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	_, fail, errs := load.counts()
	t.Logf("while haproxy was repaired: %d requests failed %v", fail, errs)
	load.stop()

	// Delete: nothing left anywhere.
	nc.ouro("lb", "delete", "web", "--wait")
	if _, err := nc.lbGet("", "web"); !api.IsNotFound(err) {
		t.Fatalf("lb get after delete --wait: %v, want NotFound", err)
	}
	for _, a := range nc.hosts {
		wait.ForDetail(t, 30*time.Second, "nothing left of the load balancer on "+a.name, func() (bool, string) {
			l := lbLeftovers(a, uid)
			return len(l) == 0, strings.Join(l, "; ")
		})
	}
	for _, n := range []string{"web-0", "web-1"} {
		in, err := nc.instance("default", n)
		if err != nil || slices.Contains(in.Metadata.Finalizers, api.FinalizerLoadBalancer) {
			t.Errorf("%s after the load balancer's delete: %v, finalizers %v", n, err, in.Metadata.Finalizers)
		}
	}
}
