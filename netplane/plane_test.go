package netplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/netplane/dnsmasq"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// twoHostSpecs is one network (VNI 5001) with instance "a" on h1 and "b"
// on h2, both allowed everything by their groups.
func twoHostSpecs(nat bool) (h1, h2 api.HostNetworkSpec) {
	a := portSpec(1, "a", "172.31.0.5")
	b := portSpec(2, "b", "172.31.0.6")
	a.Ingress = []api.FirewallRule{allowAll}
	b.Ingress = []api.FirewallRule{allowAll}
	entry := api.HostNetworkEntry{
		UID: uid(100), Name: "default", Project: "p", VNI: 5001,
		CIDR: "172.31.0.0/20", Gateway: "172.31.0.1", NAT: nat,
		Records: []api.DNSRecord{{Name: "a", IP: a.IP}, {Name: "b", IP: b.IP}},
	}
	e1, e2 := entry, entry
	e1.Peers, e1.Ports = []string{"10.99.0.12"}, []api.HostPort{a}
	e2.Peers, e2.Ports = []string{"10.99.0.11"}, []api.HostPort{b}
	return api.HostNetworkSpec{Networks: []api.HostNetworkEntry{e1}},
		api.HostNetworkSpec{Networks: []api.HostNetworkEntry{e2}}
}

func TestTwoHosts(t *testing.T) {
	l := newLab(t)
	h1, h2 := l.host["h1"], l.host["h2"]
	// A table ouro does not own must survive every Apply.
	l.mustNFT(h1.ns, "add table inet foreign\nadd chain inet foreign c\n")

	s1, s2 := twoHostSpecs(true)
	l.apply("h1", s1)
	l.apply("h2", s2)
	instA, instB := h1.plane.NetNSPath(uid(1)), h2.plane.NetNSPath(uid(2))
	router1 := h1.plane.routerNSPath(5001)

	t.Run("ping across hosts", func(t *testing.T) {
		mustPing(t, instA, "172.31.0.6")
		mustPing(t, instB, "172.31.0.5")
		mustPing(t, instA, "172.31.0.1")
	})
	t.Run("mtu", func(t *testing.T) {
		if out := l.ip(instA, "link", "show", "eth0"); !strings.Contains(out, "mtu 1450") {
			t.Errorf("instance eth0: want mtu 1450 (1500 - VXLAN), got %s", out)
		}
	})
	t.Run("dns", func(t *testing.T) {
		if got := h1.plane.InstanceDNS(uid(100)); len(got) != 1 || got[0] != "172.31.0.1" {
			t.Fatalf("InstanceDNS = %v, want [172.31.0.1]", got)
		}
		out, err := run(instA, 10*time.Second, "busybox", "nslookup", "b", "172.31.0.1")
		if err != nil || !strings.Contains(out, "172.31.0.6") {
			t.Fatalf("nslookup b from a: %v\n%s", err, out)
		}
	})
	t.Run("dhcp", func(t *testing.T) {
		// Only h1's dnsmasq knows a's MAC; h2's must not answer.
		out, err := run(instA, 20*time.Second, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3", "-T", "2", "-s", "/bin/true")
		if err != nil || !strings.Contains(out, "172.31.0.5") {
			t.Fatalf("udhcpc in a: %v\n%s", err, out)
		}
		leases, _ := os.ReadFile(filepath.Join(l.dir, "h2-state", "dnsmasq", "5001", "leases"))
		if strings.Contains(string(leases), "172.31.0.5") {
			t.Errorf("h2's dnsmasq leased a's address: %s", leases)
		}
	})
	t.Run("anti-spoofing", func(t *testing.T) {
		l.ip(instA, "addr", "add", "172.31.0.50/20", "dev", "eth0")
		defer l.ip(instA, "addr", "del", "172.31.0.50/20", "dev", "eth0")
		if _, err := run(instA, 10*time.Second, "busybox", "ping", "-c", "1", "-W", "2", "-I", "172.31.0.50", "172.31.0.6"); err == nil {
			t.Error("ping from a spoofed source address was answered")
		}
		mustPing(t, instA, "172.31.0.6")
	})
	t.Run("apply twice changes nothing", func(t *testing.T) {
		pid, ok := dnsmasq.Running(h1.plane.dnsmasqDir(5001))
		if !ok {
			t.Fatal("dnsmasq not running on h1")
		}
		before := l.snapshot("h1", router1, instA)
		l.apply("h1", s1)
		if after := l.snapshot("h1", router1, instA); after != before {
			t.Errorf("second Apply changed the host:\n--- before\n%s\n--- after\n%s", before, after)
		}
		if pid2, _ := dnsmasq.Running(h1.plane.dnsmasqDir(5001)); pid2 != pid {
			t.Errorf("dnsmasq restarted: pid %d → %d", pid, pid2)
		}
		// A new plane (an agent restart) adopts everything.
		p2, err := New(h1.plane.cfg)
		if err != nil {
			t.Fatal(err)
		}
		l.host["h1"].plane = p2
		l.apply("h1", s1)
		if after := l.snapshot("h1", router1, instA); after != before {
			t.Errorf("Apply after restart changed the host:\n--- before\n%s\n--- after\n%s", before, after)
		}
		if pid2, _ := dnsmasq.Running(h1.plane.dnsmasqDir(5001)); pid2 != pid {
			t.Errorf("dnsmasq restarted after agent restart: pid %d → %d", pid, pid2)
		}
		mustPing(t, instA, "172.31.0.6")
	})
	t.Run("records change reloads dnsmasq", func(t *testing.T) {
		pid, _ := dnsmasq.Running(h1.plane.dnsmasqDir(5001))
		s := s1
		s.Networks = []api.HostNetworkEntry{s1.Networks[0]}
		s.Networks[0].Records = append(s.Networks[0].Records[:2:2], api.DNSRecord{Name: "c", IP: "172.31.0.9"})
		l.apply("h1", s)
		wait.For(t, 10*time.Second, "name c resolves", func() bool {
			out, err := run(instA, 10*time.Second, "busybox", "nslookup", "c", "172.31.0.1")
			return err == nil && strings.Contains(out, "172.31.0.9")
		})
		if pid2, _ := dnsmasq.Running(h1.plane.dnsmasqDir(5001)); pid2 != pid {
			t.Errorf("dnsmasq restarted for a records change: pid %d → %d", pid, pid2)
		}
	})
	t.Run("peers change", func(t *testing.T) {
		s := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{s1.Networks[0]}}
		s.Networks[0].Peers = []string{"10.99.0.13"}
		l.apply("h1", s)
		fdb, err := netns.Run(router1, "", "bridge", "fdb", "show", "dev", "ourx5001")
		if err != nil {
			t.Fatal(err)
		}
		// Neither the flood entry nor learnt MACs may point at the old peer.
		if !strings.Contains(fdb, "00:00:00:00:00:00 dst 10.99.0.13") || strings.Contains(fdb, "dst 10.99.0.12") {
			t.Errorf("flood list after peers change:\n%s", fdb)
		}
		l.apply("h1", s1)
		mustPing(t, instA, "172.31.0.6")
	})
	t.Run("remove network", func(t *testing.T) {
		dir := h1.plane.dnsmasqDir(5001)
		pid, _ := dnsmasq.Running(dir)
		l.apply("h1", api.HostNetworkSpec{})
		for _, p := range []string{router1, instA} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s still exists", p)
			}
		}
		if links := l.ip(h1.ns, "-br", "link"); strings.Contains(links, "ourt") || strings.Contains(links, "ourx") {
			t.Errorf("ouro devices left in host namespace:\n%s", links)
		}
		if pid == 0 {
			t.Error("dnsmasq was not running before the removal")
		} else if cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cl), dir) {
			t.Errorf("dnsmasq %d still running", pid)
		}
		rs := l.nft(h1.ns, "list", "tables")
		if strings.Contains(rs, "ouro") {
			t.Errorf("ouro tables left: %s", rs)
		}
		if !strings.Contains(rs, "foreign") {
			t.Errorf("foreign table removed: %s", rs)
		}
		mustNotPing(t, instB, "172.31.0.5")
	})
}

func TestNAT(t *testing.T) {
	for _, nat := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[nat], func(t *testing.T) {
			l := newLab(t)
			s1, _ := twoHostSpecs(nat)
			l.apply("h1", s1)
			instA := l.host["h1"].plane.NetNSPath(uid(1))
			mustPing(t, instA, "172.31.0.1")
			if nat {
				mustPing(t, instA, "203.0.113.1")
			} else {
				mustNotPing(t, instA, "203.0.113.1")
			}
		})
	}
}

func TestFloatingIPAndSecurityGroups(t *testing.T) {
	l := newLab(t)
	s1, s2 := twoHostSpecs(true)
	a := &s1.Networks[0].Ports[0]
	a.FloatingIP = "10.99.0.100"
	a.Ingress = nil // default deny
	l.apply("h1", s1)
	l.apply("h2", s2)
	instA := l.host["h1"].plane.NetNSPath(uid(1))
	instB := l.host["h2"].plane.NetNSPath(uid(2))
	listen(t, instA)

	connect := func(from, addr string) bool {
		out, _ := run(from, 10*time.Second, "busybox", "nc", "-w", "2", addr, "8080")
		return strings.Contains(out, "hello")
	}
	t.Run("ingress denied by default", func(t *testing.T) {
		mustPing(t, instB, "172.31.0.1")
		if connect(l.ext, "10.99.0.100") {
			t.Error("floating IP reached without an ingress rule")
		}
		mustNotPing(t, instB, "172.31.0.5")
		// a's own traffic out is allowed, and replies come back.
		mustPing(t, instA, "172.31.0.6")
	})
	t.Run("ingress allowed by rule", func(t *testing.T) {
		a.Ingress = []api.FirewallRule{{Protocol: "tcp", PortMin: 8080, PortMax: 8080, CIDRs: []string{"10.99.0.0/24"}}}
		l.apply("h1", s1)
		wait.For(t, 15*time.Second, "connect to floating IP", func() bool { return connect(l.ext, "10.99.0.100") })
		// tcp 8080 does not allow ping, nor anything from b (not in the CIDR).
		mustNotPing(t, l.ext, "10.99.0.100")
		if connect(instB, "172.31.0.5") {
			t.Error("b reached a:8080 though only 10.99.0.0/24 is allowed")
		}
	})
	t.Run("source group CIDRs", func(t *testing.T) {
		a.Ingress = []api.FirewallRule{{Protocol: "all", CIDRs: []string{"172.31.0.6/32"}}}
		l.apply("h1", s1)
		mustPing(t, instB, "172.31.0.5")
		if connect(l.ext, "10.99.0.100") {
			t.Error("floating IP reached though only b is allowed")
		}
	})
	t.Run("snat to floating IP", func(t *testing.T) {
		// "out" counts the pings it gets from the floating IP.
		l.mustNFT(l.out, "table ip count {\nchain c {\ntype filter hook input priority 0\nip saddr 10.99.0.100 icmp type echo-request counter\n}\n}\n")
		mustPing(t, instA, "203.0.113.1")
		if out := l.nft(l.out, "list", "table", "ip", "count"); !regexp.MustCompile(`counter packets [1-9]`).MatchString(out) {
			t.Errorf("outside saw no ping from the floating IP:\n%s", out)
		}
	})
	t.Run("egress restricted", func(t *testing.T) {
		a.EgressRestricted = true
		a.Egress = []api.FirewallRule{{Protocol: "icmp", CIDRs: []string{"203.0.113.0/24"}}}
		l.apply("h1", s1)
		mustPing(t, instA, "203.0.113.1")
		mustNotPing(t, instA, "172.31.0.6")
		mustPing(t, instA, "172.31.0.1") // the gateway is always reachable
	})
	t.Run("floating IP removed", func(t *testing.T) {
		a.FloatingIP = ""
		a.Ingress = []api.FirewallRule{allowAll}
		l.apply("h1", s1)
		if out := l.ip(l.host["h1"].ns, "neigh", "show", "proxy"); strings.Contains(out, "10.99.0.100") {
			t.Errorf("proxy ARP entry left: %s", out)
		}
		if out := l.ip(l.host["h1"].ns, "route"); strings.Contains(out, "10.99.0.100") {
			t.Errorf("floating IP route left: %s", out)
		}
	})
}

func TestIsolation(t *testing.T) {
	l := newLab(t)
	// Two networks with the same CIDR and addresses, different VNIs, on
	// both hosts.
	mk := func(vni, instBase int) (api.HostNetworkEntry, api.HostNetworkEntry) {
		a := portSpec(instBase, "a", "172.31.0.5")
		b := portSpec(instBase+1, "b", "172.31.0.6")
		a.Ingress = []api.FirewallRule{allowAll}
		b.Ingress = []api.FirewallRule{allowAll}
		e := api.HostNetworkEntry{UID: uid(vni), Name: "n", VNI: vni, CIDR: "172.31.0.0/20", Gateway: "172.31.0.1", NAT: true}
		e1, e2 := e, e
		e1.Peers, e1.Ports = []string{"10.99.0.12"}, []api.HostPort{a}
		e2.Peers, e2.Ports = []string{"10.99.0.11"}, []api.HostPort{b}
		return e1, e2
	}
	x1, x2 := mk(6001, 10)
	y1, y2 := mk(6002, 20)
	// Different MACs in y so that a frame that leaked would be deliverable.
	y1.Ports[0].IP, y2.Ports[0].IP = "172.31.0.7", "172.31.0.8"
	y1.Ports[0].MAC, y2.Ports[0].MAC = "0a:58:ac:1f:00:07", "0a:58:ac:1f:00:08"
	l.apply("h1", api.HostNetworkSpec{Networks: []api.HostNetworkEntry{x1, y1}})
	l.apply("h2", api.HostNetworkSpec{Networks: []api.HostNetworkEntry{x2, y2}})
	xa, xb := l.host["h1"].plane.NetNSPath(uid(10)), l.host["h2"].plane.NetNSPath(uid(11))
	ya, yb := l.host["h1"].plane.NetNSPath(uid(20)), l.host["h2"].plane.NetNSPath(uid(21))
	mustPing(t, xa, "172.31.0.6")
	mustPing(t, ya, "172.31.0.8")
	mustNotPing(t, xa, "172.31.0.8")
	mustNotPing(t, xb, "172.31.0.7")
	mustNotPing(t, ya, "172.31.0.6")
	mustNotPing(t, yb, "172.31.0.5")
}

// listen runs a TCP server on port 8080 in ns that answers every
// connection, until the test ends.
func listen(t *testing.T, ns string) {
	t.Helper()
	listenOn(t, ns, "8080")
}

// listenOn runs a TCP server on port in ns that answers every connection
// with "hello", until the test ends.
func listenOn(t *testing.T, ns, port string) {
	t.Helper()
	cmd := exec.Command("busybox", "nc", "-ll", "-p", port, "-e", "/bin/echo", "hello")
	if err := netns.Do(ns, cmd.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// TestRecoversFromLeftovers starts from what a crash at various lines
// leaves behind: a namespace file never mounted, a VXLAN device never moved
// out of the host namespace, and objects of a network no longer wanted.
func TestRecoversFromLeftovers(t *testing.T) {
	l := newLab(t)
	h1 := l.host["h1"]
	router := h1.plane.routerNSPath(5001)
	if err := os.MkdirAll(filepath.Dir(router), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(router, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	l.ip(h1.ns, "link", "add", "ourx5001", "type", "vxlan", "id", "5001", "dstport", "4789", "local", "10.99.0.11")
	l.ip(h1.ns, "link", "add", "ourt7777", "type", "veth", "peer", "name", "ourt7777b")
	l.ip(h1.ns, "link", "add", "keepme0", "type", "veth", "peer", "name", "keepme1")
	stale := h1.plane.routerNSPath(7777)
	if _, err := netns.Create(stale); err != nil {
		t.Fatal(err)
	}
	staleInst := h1.plane.NetNSPath(uid(99))
	if _, err := netns.Create(staleInst); err != nil {
		t.Fatal(err)
	}

	s1, _ := twoHostSpecs(true)
	l.apply("h1", s1)
	instA := h1.plane.NetNSPath(uid(1))
	mustPing(t, instA, "172.31.0.1")
	links := l.ip(h1.ns, "-br", "link")
	for _, gone := range []string{"ourx5001", "ourt7777"} {
		if strings.Contains(links, gone) {
			t.Errorf("%s left in the host namespace:\n%s", gone, links)
		}
	}
	if !strings.Contains(links, "keepme0") {
		t.Errorf("a device not named ouro was removed:\n%s", links)
	}
	if out := l.ip(router, "-d", "link", "show", "ourx5001"); !strings.Contains(out, "vxlan id 5001") {
		t.Errorf("VXLAN device not in the router namespace: %s", out)
	}
	for _, p := range []string{stale, staleInst} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stale namespace %s not removed", p)
		}
	}
}

// TestInstancesReachNothingOnTheirHost: an instance's packets to its own
// host's addresses are dropped, but for the API server's port when one
// runs there; the gateway, other hosts and the outside stay reachable.
func TestInstancesReachNothingOnTheirHost(t *testing.T) {
	l := newLab(t)
	h1 := l.host["h1"]
	h1.plane.cfg.InstanceHostPorts = []uint16{7443}
	s1, s2 := twoHostSpecs(true)
	l.apply("h1", s1)
	l.apply("h2", s2)
	inst := h1.plane.NetNSPath(uid(1))
	for _, port := range []string{"7443", "7444", "22"} {
		listenOn(t, h1.ns, port)
	}
	listenOn(t, l.out, "8080")
	listenOn(t, l.host["h2"].ns, "7444")
	connect := func(addr, port string) bool {
		out, _ := run(inst, 10*time.Second, "busybox", "nc", "-w", "2", addr, port)
		return strings.Contains(out, "hello")
	}
	mustPing(t, inst, "172.31.0.1")
	wait.For(t, 15*time.Second, "the outside", func() bool { return connect("203.0.113.1", "8080") })
	wait.For(t, 15*time.Second, "the API port of the host", func() bool { return connect(h1.addr, "7443") })
	for _, port := range []string{"7444", "22"} {
		if connect(h1.addr, port) {
			t.Errorf("instance reached port %s of its own host", port)
		}
	}
	mustNotPing(t, inst, h1.addr)
	// The host itself still reaches its own services and the outside.
	if out, _ := run(h1.ns, 10*time.Second, "busybox", "nc", "-w", "2", h1.addr, "7444"); !strings.Contains(out, "hello") {
		t.Errorf("the host lost its own port 7444: %q", out)
	}
	// Another host's address is the outside to this instance.
	wait.For(t, 15*time.Second, "another host", func() bool { return connect(l.host["h2"].addr, "7444") })
}
