package netplane

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// The load balancer of these tests: UID uid(50), VIP 172.31.0.10,
// floating IP 10.99.0.100, a port on h1 (172.31.0.20) and one on h2
// (172.31.0.21), with the rules the network controller gives them: the
// listener port from anywhere, everything from the peer (VRRP).
const (
	lbVIP = "172.31.0.10"
	lbFIP = "10.99.0.100"
)

var lbUID = uid(50)

// lbPortSpec is the load balancer's port with address ip and VRRP peer.
func lbPortSpec(ip, peer string) api.HostPort {
	p := portSpec(50, "lb-web", ip)
	p.Driver = lbDriver
	p.VIP = lbVIP
	p.FloatingIP = lbFIP
	p.Ingress = []api.FirewallRule{
		{Protocol: "tcp", PortMin: 8080, PortMax: 8080, CIDRs: []string{"0.0.0.0/0"}},
		{Protocol: "all", CIDRs: []string{peer + "/32"}},
	}
	return p
}

// lbSpecs puts the load balancer's ports on h1 and h2 and instance b
// (172.31.0.6, everything allowed) on h2.
func lbSpecs() (h1, h2 api.HostNetworkSpec) {
	b := portSpec(2, "b", "172.31.0.6")
	b.Ingress = []api.FirewallRule{allowAll}
	entry := api.HostNetworkEntry{
		UID: uid(100), Name: "default", Project: "p", VNI: 5001,
		CIDR: "172.31.0.0/20", Gateway: "172.31.0.1", NAT: true,
	}
	e1, e2 := entry, entry
	e1.Peers, e1.Ports = []string{"10.99.0.12"}, []api.HostPort{lbPortSpec("172.31.0.20", "172.31.0.21")}
	e2.Peers, e2.Ports = []string{"10.99.0.11"}, []api.HostPort{b, lbPortSpec("172.31.0.21", "172.31.0.20")}
	return api.HostNetworkSpec{Networks: []api.HostNetworkEntry{e1}},
		api.HostNetworkSpec{Networks: []api.HostNetworkEntry{e2}}
}

// listenSay runs a TCP server on port in ns that answers every connection
// with word, until the test ends.
func listenSay(t *testing.T, ns, port, word string) {
	t.Helper()
	cmd := exec.Command("busybox", "nc", "-ll", "-p", port, "-e", "/bin/echo", word)
	if err := netns.Do(ns, cmd.Start); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// dial connects from ns to addr:8080 and returns what the server said, or
// "" when it could not connect.
func dial(ns, addr string) string {
	out, err := run(ns, 10*time.Second, "busybox", "nc", "-w", "2", addr, "8080")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// sendVRRP sends one packet of IP protocol 112 (VRRP) from ns to dst, as
// keepalived does to a unicast peer.
func sendVRRP(t *testing.T, ns, dst string) {
	t.Helper()
	var fd int
	err := netns.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 112)
		return err
	})
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{}
	to.Addr = netip.MustParseAddr(dst).As4()
	// A VRRPv2 advertisement: version 2, type 1, VRID 51, priority 200.
	msg := []byte{0x21, 51, 200, 1, 0, 1, 0, 0, 172, 31, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Sendto(fd, msg, 0, to); err != nil {
		t.Fatalf("send VRRP to %s: %v", dst, err)
	}
}

// counter returns the packets counted by the rule of table ip count in ns
// whose text contains match.
func (l *lab) counter(ns, match string) int {
	l.t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(match) + ` counter packets ([0-9]+)`)
	m := re.FindStringSubmatch(l.nft(ns, "list", "table", "ip", "count"))
	if m == nil {
		l.t.Fatalf("no counter for %q in %s", match, ns)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// underlayMAC returns the MAC of a host's underlay device.
func (l *lab) underlayMAC(host string) string {
	l.t.Helper()
	out := l.ip(l.host[host].ns, "-br", "link", "show", "eth0")
	f := strings.Fields(out)
	if len(f) < 3 {
		l.t.Fatalf("underlay of %s: %q", host, out)
	}
	return f[2]
}

// proxyARP reports whether a host answers ARP for the floating IP.
func (l *lab) proxyARP(host string) bool {
	l.t.Helper()
	return strings.Contains(l.ip(l.host[host].ns, "neigh", "show", "proxy"), lbFIP+" ")
}

// TestLBPort: a load balancer's port is a namespace on the network like a
// container's; its VIP is reached across hosts under the port's rules, its
// peers exchange VRRP, it cannot spoof, and its floating IP is announced
// by the host that holds the VIP only.
func TestLBPort(t *testing.T) {
	l := newLab(t)
	h1, h2 := l.host["h1"], l.host["h2"]
	s1, s2 := lbSpecs()
	l.apply("h1", s1)
	l.apply("h2", s2)
	lb1, lb2 := h1.plane.NetNSPath(lbUID), h2.plane.NetNSPath(lbUID)
	instB := h2.plane.NetNSPath(uid(2))
	listenSay(t, lb1, "8080", "lb1")
	listenSay(t, lb2, "8080", "lb2")

	t.Run("namespace and address", func(t *testing.T) {
		if out := l.ip(lb1, "-4", "addr", "show", "eth0"); !strings.Contains(out, "inet 172.31.0.20/20") {
			t.Errorf("lb eth0 lacks its address: %s", out)
		}
		if out := l.ip(lb1, "link", "show", "eth0"); !strings.Contains(out, "mtu 1450") || !strings.Contains(out, "0a:58:ac:1f:00:14") {
			t.Errorf("lb eth0: want mtu 1450 and the port's MAC: %s", out)
		}
		if out := l.ip(lb1, "link", "show", "lo"); !strings.Contains(out, ",UP") {
			t.Errorf("lb loopback down: %s", out)
		}
		if out := l.ip(lb1, "route"); !strings.Contains(out, "default via 172.31.0.1 dev eth0") {
			t.Errorf("lb routes: %s", out)
		}
		dev := h1.plane.PortDevice(lbUID)
		if out := l.ip(h1.plane.RouterNSPath(5001), "-d", "link", "show", dev); !strings.Contains(out, "veth") || !strings.Contains(out, "master br0") {
			t.Errorf("%s is not a veth on br0: %s", dev, out)
		}
		mustPing(t, lb1, "172.31.0.1")
	})

	// keepalived's part: the VIP on the master's eth0.
	l.ip(lb1, "addr", "add", lbVIP+"/32", "dev", "eth0")

	t.Run("apply keeps the VIP", func(t *testing.T) {
		router1 := h1.plane.RouterNSPath(5001)
		before := l.snapshot("h1", router1, lb1)
		l.apply("h1", s1)
		if after := l.snapshot("h1", router1, lb1); after != before {
			t.Errorf("second Apply changed the host:\n--- before\n%s\n--- after\n%s", before, after)
		}
		if out := l.ip(lb1, "-4", "addr", "show", "eth0"); !strings.Contains(out, lbVIP+"/32") {
			t.Errorf("Apply removed the VIP: %s", out)
		}
	})
	t.Run("VIP from another host", func(t *testing.T) {
		wait.For(t, 15*time.Second, "b reaches the VIP", func() bool { return dial(instB, lbVIP) == "lb1" })
	})
	t.Run("ingress rules apply to the VIP", func(t *testing.T) {
		listenOn(t, lb1, "9090")
		if out, _ := run(instB, 10*time.Second, "busybox", "nc", "-w", "2", lbVIP, "9090"); strings.Contains(out, "hello") {
			t.Error("b reached the VIP on a port no rule allows")
		}
		mustNotPing(t, instB, lbVIP)
	})
	t.Run("VRRP between the ports", func(t *testing.T) {
		for _, ns := range []string{lb1, lb2} {
			l.mustNFT(ns, "table ip count {\nchain c {\ntype filter hook input priority 0\n"+
				"ip protocol 112 ip saddr 172.31.0.20 counter\n"+
				"ip protocol 112 ip saddr 172.31.0.21 counter\n"+
				"ip protocol 112 ip saddr 172.31.0.6 counter\n}\n}\n")
		}
		wait.For(t, 15*time.Second, "VRRP from h2's port to h1's", func() bool {
			sendVRRP(t, lb2, "172.31.0.20")
			return l.counter(lb1, "ip saddr 172.31.0.21") > 0
		})
		wait.For(t, 15*time.Second, "VRRP from h1's port to h2's", func() bool {
			sendVRRP(t, lb1, "172.31.0.21")
			return l.counter(lb2, "ip saddr 172.31.0.20") > 0
		})
		// Only the peer may: b is on h2 like lb2, so its packets, sent
		// first, would arrive before lb2's last one.
		for range 3 {
			sendVRRP(t, instB, "172.31.0.20")
		}
		n := l.counter(lb1, "ip saddr 172.31.0.21")
		wait.For(t, 15*time.Second, "another VRRP packet from the peer", func() bool {
			sendVRRP(t, lb2, "172.31.0.20")
			return l.counter(lb1, "ip saddr 172.31.0.21") > n
		})
		if got := l.counter(lb1, "ip saddr 172.31.0.6"); got != 0 {
			t.Errorf("%d VRRP packets from b reached the load balancer; only its peer is allowed", got)
		}
	})
	t.Run("spoofing", func(t *testing.T) {
		// The VIP is a source of the port as well as its address.
		wait.For(t, 15*time.Second, "ping b from the VIP", func() bool {
			_, err := run(lb1, 10*time.Second, "busybox", "ping", "-c", "1", "-W", "2", "-I", lbVIP, "172.31.0.6")
			return err == nil
		})
		l.ip(lb1, "addr", "add", "172.31.0.50/20", "dev", "eth0")
		defer l.ip(lb1, "addr", "del", "172.31.0.50/20", "dev", "eth0")
		if _, err := run(lb1, 10*time.Second, "busybox", "ping", "-c", "2", "-W", "2", "-I", "172.31.0.50", "172.31.0.6"); err == nil {
			t.Error("ping from a spoofed source address of the lb port was answered")
		}
	})
	t.Run("floating IP follows the active host", func(t *testing.T) {
		for _, h := range []string{"h1", "h2"} {
			if out := l.ip(l.host[h].ns, "route"); !strings.Contains(out, lbFIP) {
				t.Errorf("%s does not route the floating IP: %s", h, out)
			}
			if l.proxyARP(h) {
				t.Errorf("%s answers ARP for the floating IP of an inactive load balancer", h)
			}
		}
		if got := dial(l.out, lbFIP); got != "" {
			t.Errorf("the outside reached the floating IP of an inactive load balancer: %q", got)
		}

		if err := h1.plane.SetLBActive(lbUID, true); err != nil {
			t.Fatal(err)
		}
		if !l.proxyARP("h1") {
			t.Error("h1 does not answer ARP for the floating IP after SetLBActive(true)")
		}
		wait.For(t, 15*time.Second, "the outside reaches lb1 through its floating IP", func() bool { return dial(l.out, lbFIP) == "lb1" })

		// Apply, and a new plane (an agent restart), keep the flag.
		l.apply("h1", s1)
		l.apply("h2", s2)
		p, err := New(h1.plane.cfg)
		if err != nil {
			t.Fatal(err)
		}
		h1.plane = p
		l.apply("h1", s1)
		if !l.proxyARP("h1") || l.proxyARP("h2") {
			t.Errorf("after Apply: proxy ARP on h1 %v, on h2 %v; want only on h1", l.proxyARP("h1"), l.proxyARP("h2"))
		}

		// keepalived moves the VIP to h2; the agents tell their planes.
		l.ip(lb1, "addr", "del", lbVIP+"/32", "dev", "eth0")
		l.ip(lb2, "addr", "add", lbVIP+"/32", "dev", "eth0")
		if err := h1.plane.SetLBActive(lbUID, false); err != nil {
			t.Fatal(err)
		}
		if err := h2.plane.SetLBActive(lbUID, true); err != nil {
			t.Fatal(err)
		}
		// The gratuitous ARP switches the outside's router at once: its
		// entry is fresh and would not be asked again for seconds.
		mac2 := l.underlayMAC("h2")
		wait.ForDetail(t, 2*time.Second, "the outside router learns h2's MAC for the floating IP", func() (bool, string) {
			out := l.ip(l.ext, "neigh", "show", lbFIP)
			return strings.Contains(out, mac2), out
		})
		wait.For(t, 15*time.Second, "the outside reaches lb2 through the floating IP", func() bool { return dial(l.out, lbFIP) == "lb2" })
		l.apply("h1", s1)
		l.apply("h2", s2)
		if l.proxyARP("h1") || !l.proxyARP("h2") {
			t.Errorf("after the move and Apply: proxy ARP on h1 %v, on h2 %v; want only on h2", l.proxyARP("h1"), l.proxyARP("h2"))
		}
		if got := dial(l.out, lbFIP); got != "lb2" {
			t.Errorf("after Apply the outside got %q, want lb2", got)
		}
	})
	t.Run("port leaves", func(t *testing.T) {
		s := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{s2.Networks[0]}}
		s.Networks[0].Ports = s2.Networks[0].Ports[:1]
		l.apply("h2", s)
		if _, err := os.Stat(lb2); !os.IsNotExist(err) {
			t.Errorf("the load balancer's namespace %s is left", lb2)
		}
		if l.proxyARP("h2") {
			t.Error("proxy ARP for the floating IP of a removed port is left")
		}
		if out := l.ip(h2.ns, "route"); strings.Contains(out, lbFIP) {
			t.Errorf("floating IP route left: %s", out)
		}
		// The flag went with the port: the port coming back is inactive.
		l.apply("h2", s2)
		if l.proxyARP("h2") {
			t.Error("a load balancer that came back is announced without SetLBActive")
		}
		mustPing(t, lb2, "172.31.0.1")
	})
	t.Run("kind change", func(t *testing.T) {
		s := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{s2.Networks[0]}}
		s.Networks[0].Ports = append([]api.HostPort{}, s2.Networks[0].Ports...)
		s.Networks[0].Ports[1].Driver = api.DriverVM
		l.apply("h2", s)
		dev := h2.plane.PortDevice(lbUID)
		if out := l.ip(h2.plane.RouterNSPath(5001), "-d", "link", "show", dev); !strings.Contains(out, "tun type tap") {
			t.Errorf("%s not replaced by a TAP: %s", dev, out)
		}
		if netns.IsNamespace(lb2) {
			t.Error("the load balancer's namespace is left after the port became a VM's")
		}
		l.apply("h2", s2)
		if out := l.ip(h2.plane.RouterNSPath(5001), "-d", "link", "show", dev); !strings.Contains(out, "veth") {
			t.Errorf("%s not replaced by a veth: %s", dev, out)
		}
		mustPing(t, lb2, "172.31.0.1")
	})
}

// TestSetLBActiveBeforeApply: a plane that has not applied yet records the
// flag, and its first Apply announces the floating IP.
func TestSetLBActiveBeforeApply(t *testing.T) {
	l := newLab(t)
	h1 := l.host["h1"]
	if err := h1.plane.SetLBActive(lbUID, true); err != nil {
		t.Fatal(err)
	}
	if l.proxyARP("h1") {
		t.Fatal("proxy ARP before the load balancer's port is applied")
	}
	s1, _ := lbSpecs()
	l.apply("h1", s1)
	if !l.proxyARP("h1") {
		t.Error("the first Apply did not announce the active load balancer's floating IP")
	}
	b, err := os.ReadFile(filepath.Join(h1.plane.cfg.StateDir, lbActiveFile))
	if err != nil || strings.TrimSpace(string(b)) != lbUID {
		t.Errorf("%s = %q, %v; want the load balancer's UID", lbActiveFile, b, err)
	}
	if err := h1.plane.Apply(context.Background(), api.HostNetworkSpec{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(h1.plane.cfg.StateDir, lbActiveFile)); len(b) != 0 {
		t.Errorf("%s keeps %q after the port left", lbActiveFile, b)
	}
}

// TestLBActiveRecordAfterRestart: a new plane (an agent restart) keeps the
// proxy ARP entry of a load balancer recorded active, but does not bring
// back one the host lost, nor announce it, until SetLBActive confirms the
// flag: while the agent was down, the VIP may have gone to the other host.
func TestLBActiveRecordAfterRestart(t *testing.T) {
	l := newLab(t)
	h1 := l.host["h1"]
	s1, _ := lbSpecs()
	l.apply("h1", s1)
	if err := h1.plane.SetLBActive(lbUID, true); err != nil {
		t.Fatal(err)
	}
	if !l.proxyARP("h1") {
		t.Fatal("no proxy ARP after SetLBActive(true)")
	}
	l.ip(h1.ns, "neigh", "del", "proxy", lbFIP, "dev", "eth0")
	p, err := New(h1.plane.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h1.plane = p
	l.apply("h1", s1)
	if l.proxyARP("h1") {
		t.Error("a new plane answers ARP again for a floating IP on a record alone")
	}
	if err := h1.plane.SetLBActive(lbUID, true); err != nil {
		t.Fatal(err)
	}
	if !l.proxyARP("h1") {
		t.Error("no proxy ARP once SetLBActive confirmed the record")
	}
}
