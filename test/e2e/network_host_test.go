package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// What a network leaves on a host, by the names docs/networking.md gives
// them: a router namespace ouro-n<vni> with bridge, VXLAN device and
// dnsmasq, a transit veth ourt<vni> in the host namespace, and rules.

// routerNetns returns the path where an agent bound the router namespace
// of a VNI, or "" when there is none.
func routerNetns(a *agentProc, vni int) string {
	for _, m := range mountsUnder(agentNetnsDir(a.dir)) {
		if filepath.Base(m) == fmt.Sprintf("ouro-n%d", vni) {
			return m
		}
	}
	return ""
}

// networkVNI returns the VNI of a network, waiting until it has one.
func (nc *netCloud) networkVNI(project, name string) int {
	nc.t.Helper()
	var n api.Network
	wait.ForDetail(nc.t, 10*time.Second, "VNI of "+name, func() (bool, string) {
		nc.getJSON(&n, "network", "get", name, "--project", projectOr(project))
		return n.Status.VNI != 0, fmt.Sprintf("%+v", n.Status)
	})
	return n.Status.VNI
}

// links lists the link names of a namespace.
func links(t testing.TB, netns string) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(mustRunIn(t, netns, "ip", "-o", "link", "show"), "\n") {
		// "3: ourt4096@if2: <BROADCAST,…"
		f := strings.Fields(line)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	return names
}

// dnsmasqIn returns the pids of dnsmasq processes in a namespace.
func dnsmasqIn(netns string) []int {
	var pids []int
	for _, pid := range pidsInNetns(netns) {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "dnsmasq" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid runs the program comm.
func alive(pid int, comm string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && strings.TrimSpace(string(b)) == comm
}

// stableRuleset is `nft -s list ruleset` (without counters) of a namespace.
func stableRuleset(t testing.TB, netns string) string {
	t.Helper()
	return mustRunIn(t, netns, "nft", "-s", "list", "ruleset")
}

func TestAgentRestartKeepsInstancesConnected(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.ouro("fip", "pool", "create", "ext", "--cidr", underlayCIDR, "--range", "10.99.0.200-10.99.0.250")
	nc.ouro("sg", "create", "web")
	nc.ouro("sg", "rule", "add", "web", "--protocol", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
	nc.createOn("h1", vm{name: "srv", network: "default", groups: []string{"default", "web"}, command: webServer(8080)})
	nc.createOn("h2", vm{name: "cli"})
	srvIP := nc.iface("", "srv").IP
	nc.ouro("fip", "allocate", "srv-ip", "--instance", "srv")
	var fip api.FloatingIP
	wait.ForDetail(t, 30*time.Second, "srv-ip associated", func() (bool, string) {
		nc.getJSON(&fip, "fip", "get", "srv-ip")
		return fip.Status.Address != "" && fip.Status.Host == "h1", fmt.Sprintf("%+v", fip.Status)
	})
	fipAddr := fip.Status.Address + ":8080"
	nc.waitPing("", "cli", srvIP)
	wait.ForDetail(t, 30*time.Second, "the outside reaching srv at "+fipAddr, func() (bool, string) {
		out, err := fetch(nc.u.outside, fipAddr)
		return err == nil && strings.TrimSpace(out) == "srv", fmt.Sprintf("%v: %q", err, out)
	})
	nc.waitApplied()

	h1 := nc.agents["h1"]
	vni := nc.networkVNI("", "default")
	router := routerNetns(h1, vni)
	if router == "" {
		t.Fatalf("h1 has no router namespace ouro-n%d in %s: mounts %v", vni, agentNetnsDir(h1.dir), mountsUnder(agentNetnsDir(h1.dir)))
	}
	hostBefore, routerBefore := stableRuleset(t, h1.netns), stableRuleset(t, router)
	dnsBefore := dnsmasqIn(router)

	// Connections from the outside (floating IP, through h1's host and
	// router namespaces) and between hosts (VXLAN) keep being made while
	// h1's agent dies and comes back.
	var (
		mu       sync.Mutex
		failures []string
		rounds   int
	)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := fetch(nc.u.outside, fipAddr)
			ok, msg := nc.ping("", "cli", srvIP)
			mu.Lock()
			rounds++
			if err != nil || strings.TrimSpace(out) != "srv" {
				failures = append(failures, fmt.Sprintf("fetch %s: %v %q", fipAddr, err, out))
			}
			if !ok {
				failures = append(failures, msg)
			}
			mu.Unlock()
		}
	}()
	waitRounds := func(n int) {
		t.Helper()
		mu.Lock()
		target := rounds + n
		mu.Unlock()
		wait.ForDetail(t, 60*time.Second, fmt.Sprintf("%d rounds of connections", n), func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return rounds >= target, fmt.Sprintf("%d rounds", rounds)
		})
	}

	h1.kill()
	waitRounds(2) // with the agent dead
	nc.startAgent(h1)
	// A change to h1's HostNetwork that moves no rule (a DNS record for a
	// new instance elsewhere) proves the new agent applies again.
	nc.createOn("h2", vm{name: "probe", network: "default", groups: []string{"web"}})
	nc.waitApplied()
	waitRounds(2)
	close(stop)
	<-stopped
	if len(failures) > 0 {
		t.Errorf("%d of %d rounds of connections failed across the agent restart:\n%s", len(failures), rounds, strings.Join(failures, "\n"))
	}

	if got := routerNetns(h1, vni); got != router {
		t.Errorf("router namespace moved from %q to %q", router, got)
	}
	if after := stableRuleset(t, h1.netns); after != hostBefore {
		t.Errorf("h1's host ruleset changed across the restart:\nbefore:\n%s\nafter:\n%s", hostBefore, after)
	}
	if after := stableRuleset(t, router); after != routerBefore {
		t.Errorf("h1's router ruleset changed across the restart:\nbefore:\n%s\nafter:\n%s", routerBefore, after)
	}
	for _, pid := range dnsBefore {
		if !alive(pid, "dnsmasq") {
			t.Errorf("dnsmasq %d did not survive the agent restart", pid)
		}
	}
	probeIP := nc.iface("", "probe").IP
	wait.ForDetail(t, 30*time.Second, "srv resolving probe after the restart", func() (bool, string) {
		out, err := nc.exec("", "srv", "nslookup", "probe")
		_, answer, _ := strings.Cut(out, "Name:")
		return err == nil && strings.Contains(answer, probeIP), fmt.Sprintf("%v: %s", err, out)
	})
}

func TestLastInstanceOfANetworkLeavesNothingOnTheHost(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.ouro("network", "create", "app", "--cidr", "10.70.0.0/24")
	x := nc.createOn("h1", vm{name: "x", network: "app"})
	nc.createOn("h2", vm{name: "y", network: "app"})
	nc.waitPing("", "x", nc.iface("", "y").IP)
	vni := nc.networkVNI("", "app")
	h1, h2 := nc.agents["h1"], nc.agents["h2"]
	transit, vxlan := fmt.Sprintf("ourt%d", vni), fmt.Sprintf("ourx%d", vni)

	router := routerNetns(h1, vni)
	if router == "" {
		t.Fatalf("h1 has no router namespace ouro-n%d in %s", vni, agentNetnsDir(h1.dir))
	}
	dns := dnsmasqIn(router)
	if len(dns) == 0 {
		t.Fatalf("no dnsmasq in h1's router namespace %s", router)
	}
	if l := links(t, h1.netns); !slices.Contains(l, transit) {
		t.Fatalf("h1 has no transit link %s: %v", transit, l)
	}
	if l := links(t, router); !slices.Contains(l, vxlan) || !slices.Contains(l, "br0") {
		t.Fatalf("h1's router namespace lacks %s or br0: %v", vxlan, l)
	}

	nc.ouro("instance", "delete", "x", "--wait")
	wait.ForDetail(t, 30*time.Second, "h1 clean of network app", func() (bool, string) {
		var left []string
		if r := routerNetns(h1, vni); r != "" {
			left = append(left, "router namespace "+r)
		}
		for _, l := range links(t, h1.netns) {
			if strings.HasSuffix(l, strconv.Itoa(vni)) && strings.HasPrefix(l, "our") {
				left = append(left, "link "+l)
			}
		}
		for _, pid := range dns {
			if alive(pid, "dnsmasq") {
				left = append(left, fmt.Sprintf("dnsmasq %d", pid))
			}
		}
		if rs := stableRuleset(t, h1.netns); strings.Contains(rs, transit) || strings.Contains(rs, "10.70.0.") {
			left = append(left, "host rules naming the network:\n"+rs)
		}
		for _, m := range append(mountsUnder(h1.dir), mountsUnder(agentNetnsDir(h1.dir))...) {
			if strings.Contains(m, x.Metadata.UID) {
				left = append(left, "mount "+m)
			}
		}
		return len(left) == 0, strings.Join(left, "; ")
	})

	// h2 keeps its share, without h1 as a VXLAN peer, and y still has
	// its gateway.
	router2 := routerNetns(h2, vni)
	if router2 == "" {
		t.Fatalf("h2 lost its router namespace of app while y runs there")
	}
	wait.ForDetail(t, 30*time.Second, "h2 forgetting h1 as a peer", func() (bool, string) {
		out := mustRunIn(t, router2, "bridge", "fdb", "show", "dev", vxlan)
		return !strings.Contains(out, hostIP(0)), out
	})
	nc.waitPing("", "y", "10.70.0.1")
}
