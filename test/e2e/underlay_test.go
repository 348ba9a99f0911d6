package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// The underlay is a small data centre made of network namespaces:
//
//	outside 203.0.113.10 ──── 203.0.113.1 gateway 10.99.0.1 ─┐ (masquerade 10.99.0.0/24)
//	("the internet")                                         │
//	                                 switch: bridge br0 ─────┤
//	                  server 10.99.0.2 ──────────────────────┤
//	                  h1 10.99.0.11, h2 10.99.0.12, … ───────┘
//
// Every namespace is named <prefix>-<role>, with a random prefix per test,
// and removed when the test ends, with the processes inside.
const (
	underlayCIDR   = "10.99.0.0/24"
	underlayPrefix = "/24"
	gatewayIP      = "10.99.0.1"
	serverIP       = "10.99.0.2"
	outsideIP      = "203.0.113.10"
	outsideGateway = "203.0.113.1"
	outsidePrefix  = "/24"
)

// underlay is the set of namespaces of one test. Fields hold namespace
// paths, usable with commandIn and runIn.
type underlay struct {
	prefix  string
	sw      string
	gateway string
	outside string
	server  string
	hosts   []underlayHost
}

// underlayHost is one host's namespace and address.
type underlayHost struct {
	name, netns, ip string
}

// hostIP returns the underlay address of host i (0-based).
func hostIP(i int) string { return fmt.Sprintf("10.99.0.%d", 11+i) }

// newUnderlay builds the namespaces for a server and n hosts.
func newUnderlay(t testing.TB, n int) *underlay {
	t.Helper()
	testenv.NeedRoot(t)
	for _, bin := range []string{"ip", "nsenter", "nft", "sysctl"} {
		testenv.NeedBinary(t, bin)
	}
	if n < 1 || n > 9 {
		t.Fatalf("newUnderlay: %d hosts, want 1 to 9", n)
	}
	u := &underlay{prefix: "oe" + randomSuffix(4)}
	u.sw = addNetns(t, u.prefix+"-sw")
	ip(t, u.sw, "link", "add", "br0", "type", "bridge")
	ip(t, u.sw, "link", "set", "br0", "up")

	u.gateway = u.attach(t, "gw", gatewayIP)
	u.server = u.attach(t, "srv", serverIP)
	route(t, u.server, gatewayIP)
	for i := 0; i < n; i++ {
		h := underlayHost{name: fmt.Sprintf("h%d", i+1), ip: hostIP(i)}
		h.netns = u.attach(t, h.name, h.ip)
		route(t, h.netns, gatewayIP)
		u.hosts = append(u.hosts, h)
	}

	// The home router: a second leg to the outside, forwarding, and
	// masquerade of the cluster network, as a Pi gateway would do it.
	u.outside = addNetns(t, u.prefix+"-out")
	ip(t, u.gateway, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(u.outside))
	ip(t, u.gateway, "addr", "add", outsideGateway+outsidePrefix, "dev", "eth1")
	ip(t, u.gateway, "link", "set", "eth1", "up")
	ip(t, u.outside, "addr", "add", outsideIP+outsidePrefix, "dev", "eth0")
	ip(t, u.outside, "link", "set", "eth0", "up")
	route(t, u.outside, outsideGateway)
	// Floating IPs live on the cluster network: the outside reaches them
	// through the gateway, like a provider routing a public block.
	ip(t, u.outside, "route", "add", underlayCIDR, "via", outsideGateway)
	mustRunIn(t, u.gateway, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	nft(t, u.gateway, `table ip oe-gateway {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth1" ip saddr `+underlayCIDR+` counter masquerade
	}
}`)
	return u
}

// attach adds a namespace for role, cabled to the switch as eth0 with
// address addr, and returns its path.
func (u *underlay) attach(t testing.TB, role, addr string) string {
	t.Helper()
	ns := addNetns(t, u.prefix+"-"+role)
	// The switch port carries the role's name.
	ip(t, u.sw, "link", "add", role, "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(ns))
	ip(t, u.sw, "link", "set", role, "master", "br0")
	ip(t, u.sw, "link", "set", role, "up")
	ip(t, ns, "addr", "add", addr+underlayPrefix, "dev", "eth0")
	ip(t, ns, "link", "set", "eth0", "up")
	return ns
}

// ip runs ip(8) on the namespace at path netns.
func ip(t testing.TB, netns string, args ...string) string {
	t.Helper()
	return mustRunIn(t, "", "ip", append([]string{"-n", filepath.Base(netns)}, args...)...)
}

// route sets the default route of a namespace.
func route(t testing.TB, netns, via string) {
	t.Helper()
	ip(t, netns, "route", "add", "default", "via", via)
}

// nft loads a ruleset into a namespace's nftables.
func nft(t testing.TB, netns, ruleset string) {
	t.Helper()
	cmd := commandIn(netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s\n%s", netns, err, out, ruleset)
	}
}

// ruleset returns `nft list ruleset` of a namespace.
func ruleset(t testing.TB, netns string) string {
	t.Helper()
	return mustRunIn(t, netns, "nft", "list", "ruleset")
}
