package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// The networking tests send real packets between namespaces: instances on
// different hosts meet over VXLAN on the underlay, reach the outside
// through NAT, and are reached from the outside only through floating IPs
// and only where their security groups allow.

// macOf returns the MAC the design derives from an IPv4 address,
// 0a:58:<ip bytes>.
func macOf(ip string) string {
	a := netip.MustParseAddr(ip).As4()
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3])
}

// checkInterface asserts that an instance's first interface is on network
// in cidr, that its MAC follows from its IP, and that the instance sees
// that address and MAC on its eth0.
func (nc *netCloud) checkInterface(project, name, network, cidr string) api.Interface {
	nc.t.Helper()
	ifc := nc.iface(project, name)
	if ifc.Network != network {
		nc.t.Errorf("%s: interface on network %q, want %q", name, ifc.Network, network)
	}
	addr, err := netip.ParseAddr(ifc.IP)
	if err != nil || !netip.MustParsePrefix(cidr).Contains(addr) {
		nc.t.Errorf("%s: IP %q is not in %s", name, ifc.IP, cidr)
	}
	if err == nil && !strings.EqualFold(ifc.MAC, macOf(ifc.IP)) {
		nc.t.Errorf("%s: MAC %q, want %s derived from %s", name, ifc.MAC, macOf(ifc.IP), ifc.IP)
	}
	out, err := nc.exec(project, name, "ip", "-o", "addr", "show", "eth0")
	if err != nil || !strings.Contains(out, " "+ifc.IP+"/") {
		nc.t.Errorf("%s: eth0 inside the instance lacks %s: %v\n%s", name, ifc.IP, err, out)
	}
	out, err = nc.exec(project, name, "ip", "-o", "link", "show", "eth0")
	if err != nil || !strings.Contains(strings.ToLower(out), strings.ToLower(ifc.MAC)) {
		nc.t.Errorf("%s: eth0 inside the instance lacks MAC %s: %v\n%s", name, ifc.MAC, err, out)
	}
	return ifc
}

func TestInstancesOnTwoHostsTalkByIPAndName(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.createOn("h1", vm{name: "alpha"})
	nc.createOn("h2", vm{name: "beta"})
	// Every project has a network "default", 172.31.0.0/20.
	a := nc.checkInterface("", "alpha", "default", "172.31.0.0/20")
	b := nc.checkInterface("", "beta", "default", "172.31.0.0/20")
	if a.IP == b.IP || strings.EqualFold(a.MAC, b.MAC) {
		t.Fatalf("alpha and beta share an address: %+v %+v", a, b)
	}

	nc.waitPing("", "alpha", b.IP)
	nc.waitPing("", "beta", a.IP)
	for _, tc := range []struct{ from, to, ip string }{{"alpha", "beta", b.IP}, {"beta", "alpha", a.IP}} {
		wait.ForDetail(t, 30*time.Second, tc.from+" resolving "+tc.to, func() (bool, string) {
			out, err := nc.exec("", tc.from, "nslookup", tc.to)
			// The answer follows the "Name:" line; the server's own
			// address comes before it.
			_, answer, _ := strings.Cut(out, "Name:")
			return err == nil && strings.Contains(answer, tc.ip), fmt.Sprintf("%v: %s", err, out)
		})
		// Pinging by name would need the container's resolver and a raw
		// socket it does not hold (nc.ping): the name resolves to the
		// address pinged above.

		// Every address has a name too, as in an AWS VPC.
		addrName := api.AddressName(tc.ip)
		wait.ForDetail(t, 30*time.Second, tc.from+" resolving "+addrName, func() (bool, string) {
			out, err := nc.exec("", tc.from, "nslookup", addrName)
			_, answer, _ := strings.Cut(out, "Name:")
			return err == nil && strings.Contains(answer, tc.ip), fmt.Sprintf("%v: %s", err, out)
		})
	}
	// Egress to the outside through NAT: the instance's address is private.
	nc.waitPing("", "alpha", outsideIP)
	nc.waitPing("", "beta", outsideIP)
}

func TestNoNATNetworkDoesNotReachTheOutside(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.ouro("network", "create", "closed", "--cidr", "10.40.0.0/24", "--no-nat")
	nc.ouro("network", "create", "open", "--cidr", "10.41.0.0/24")
	nc.createOn("h1", vm{name: "in1", network: "closed"})
	nc.createOn("h2", vm{name: "in2", network: "closed"})
	nc.createOn("h1", vm{name: "out1", network: "open"})
	in2 := nc.checkInterface("", "in2", "closed", "10.40.0.0/24")
	nc.checkInterface("", "in1", "closed", "10.40.0.0/24")

	// Inside the network all is well, and a NAT network on the same host
	// gets out: the difference is the flag, not the host.
	nc.waitPing("", "in1", in2.IP)
	nc.waitPing("", "out1", outsideIP)
	nc.neverPing("", "in1", outsideIP)
	nc.neverPing("", "in2", outsideIP)
	// Nor does it reach the underlay behind the router.
	nc.neverPing("", "in1", gatewayIP)
}

func TestFloatingIPReachesOnlyAllowedPorts(t *testing.T) {
	nc := newNetCloud(t, 2)
	nc.ouro("fip", "pool", "create", "ext", "--cidr", underlayCIDR, "--range", "10.99.0.200-10.99.0.250")
	nc.ouro("sg", "create", "web")
	// Port 8080 will be allowed; 9090 listens too, and never is.
	serve := []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && httpd -p 9090 -h /www && exec httpd -f -p 8080 -h /www"}
	in := nc.createOn("h2", vm{name: "web", network: "default", groups: []string{"web"}, command: serve})
	ifc := nc.iface("", "web")
	nc.ouro("fip", "allocate", "web-ip", "--instance", "web")
	var fip api.FloatingIP
	wait.ForDetail(t, 30*time.Second, "web-ip associated", func() (bool, string) {
		nc.getJSON(&fip, "fip", "get", "web-ip")
		return fip.Status.Address != "" && fip.Status.Host == in.Status.Host && fip.Status.InstanceIP == ifc.IP,
			fmt.Sprintf("%+v", fip.Status)
	})
	if addr := netip.MustParseAddr(fip.Status.Address); addr.Less(netip.MustParseAddr("10.99.0.200")) || netip.MustParseAddr("10.99.0.250").Less(addr) {
		t.Fatalf("floating IP %s is outside the pool's range", addr)
	}
	nc.waitApplied()
	// The instance serves on both ports: from inside they answer.
	for _, port := range []string{"8080", "9090"} {
		wait.ForDetail(t, 10*time.Second, "web serving on "+port, func() (bool, string) {
			out, err := nc.exec("", "web", wgetArgv("127.0.0.1:"+port)...)
			return err == nil && strings.TrimSpace(out) == "web", fmt.Sprintf("%v: %s", err, out)
		})
	}

	fipURL := func(port int) string { return fmt.Sprintf("%s:%d", fip.Status.Address, port) }
	closed := func(port int) {
		t.Helper()
		for i := 0; i < 2; i++ {
			if out, err := fetch(nc.u.outside, fipURL(port)); err == nil {
				t.Fatalf("the outside reaches %s without a rule: %q", fipURL(port), out)
			}
		}
	}
	closed(8080)
	closed(9090)

	// Adding the rule opens 8080 within a second or two, and only 8080.
	nc.ouro("sg", "rule", "add", "web", "--protocol", "tcp", "--port", "8080", "--cidr", "0.0.0.0/0")
	wait.ForDetail(t, 10*time.Second, "the outside reaching "+fipURL(8080), func() (bool, string) {
		out, err := fetch(nc.u.outside, fipURL(8080))
		return err == nil && strings.TrimSpace(out) == "web", fmt.Sprintf("%v: %q", err, out)
	})
	closed(9090)

	// Only through the floating IP: even with routes to the private
	// network, the hosts do not forward to instance addresses.
	ip(t, nc.u.outside, "route", "add", "172.31.0.0/20", "via", outsideGateway)
	ip(t, nc.u.gateway, "route", "add", "172.31.0.0/20", "via", hostAddress(nc, in.Status.Host))
	if out, err := fetch(nc.u.outside, ifc.IP+":8080"); err == nil {
		t.Errorf("the outside reaches web's private address %s: %q", ifc.IP, out)
	}

	// Deleting the rule closes the port again.
	var sg api.SecurityGroup
	nc.getJSON(&sg, "sg", "get", "web")
	if len(sg.Spec.Rules) != 1 || sg.Spec.Rules[0].ID == "" {
		t.Fatalf("group web has rules %+v, want one with an ID", sg.Spec.Rules)
	}
	nc.ouro("sg", "rule", "delete", "web", sg.Spec.Rules[0].ID)
	wait.ForDetail(t, 10*time.Second, "the outside no longer reaching "+fipURL(8080), func() (bool, string) {
		out, err := fetch(nc.u.outside, fipURL(8080))
		return err != nil, fmt.Sprintf("still answers %q", out)
	})
	closed(8080)
}

// hostAddress returns the underlay address of a host by name.
func hostAddress(nc *netCloud, host string) string {
	nc.t.Helper()
	for _, h := range nc.u.hosts {
		if h.name == host {
			return h.ip
		}
	}
	nc.t.Fatalf("no host %q", host)
	return ""
}

func TestProjectsWithOverlappingCIDRsAreIsolated(t *testing.T) {
	nc := newNetCloud(t, 2)
	type member struct{ project, name, host string }
	members := []member{
		{"red", "r1", "h1"}, {"red", "r2", "h2"},
		{"blue", "b1", "h1"}, {"blue", "b2", "h2"}, {"blue", "b3", "h2"},
	}
	vnis := map[int]string{}
	for _, p := range []string{"red", "blue"} {
		nc.ouro("project", "create", p)
		nc.ouro("network", "create", "net", "--project", p, "--cidr", "10.20.0.0/24")
		var n api.Network
		wait.ForDetail(t, 10*time.Second, "VNI of "+p+"/net", func() (bool, string) {
			nc.getJSON(&n, "network", "get", "net", "--project", p)
			return n.Status.VNI != 0, fmt.Sprintf("%+v", n.Status)
		})
		if other, dup := vnis[n.Status.VNI]; dup {
			t.Fatalf("%s/net and %s/net share VNI %d", p, other, n.Status.VNI)
		}
		vnis[n.Status.VNI] = p
	}
	ips := map[string]string{} // project/name → IP
	for _, m := range members {
		nc.createOn(m.host, vm{project: m.project, name: m.name, network: "net", command: webServer(8080)})
		ips[m.project+"/"+m.name] = nc.checkInterface(m.project, m.name, "net", "10.20.0.0/24").IP
	}

	// Each project works inside, across hosts.
	nc.waitPing("red", "r1", ips["red/r2"])
	nc.waitPing("blue", "b1", ips["blue/b2"])
	nc.waitPing("blue", "b2", ips["blue/b3"])

	// No packet crosses: fetching any address of the other project from
	// any instance gets nothing, or an answer from the instance's own
	// project that happens to hold the same address.
	for _, from := range members {
		for _, to := range members {
			if from.project == to.project {
				continue
			}
			target := ips[to.project+"/"+to.name]
			out, err := nc.exec(from.project, from.name, wgetArgv(target+":8080")...)
			got := strings.TrimSpace(out)
			if err == nil && !sameProject(got, from.project) {
				t.Errorf("%s/%s fetching %s (%s/%s) got an answer from %q", from.project, from.name, target, to.project, to.name, got)
			}
		}
	}
	// An address only blue uses is silent for red.
	if own := ownerOf(ips, "red", ips["blue/b3"]); own == "" {
		nc.neverPing("red", "r1", ips["blue/b3"])
	}
}

// sameProject reports whether an instance name (as its web server answers)
// belongs to project, by the names TestProjectsWithOverlappingCIDRs gives.
func sameProject(name, project string) bool {
	return name != "" && name[0] == project[0]
}

// ownerOf returns the instance of project holding ip, or "".
func ownerOf(ips map[string]string, project, ip string) string {
	for k, v := range ips {
		if strings.HasPrefix(k, project+"/") && v == ip {
			return k
		}
	}
	return ""
}
