package nft

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

func testRouter(nat bool) Router {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	return Router{
		CIDR: netip.MustParsePrefix("172.31.0.0/20"), Gateway: netip.MustParseAddr("172.31.0.1"),
		GatewayMAC: mac("0e:00:00:00:13:89"), NAT: nat,
		Bridge: "br0", VXLAN: "ourx5001", Transit: "transit",
		Ports: []Port{
			{
				Device: "ourpbbbb", MAC: mac("0a:58:ac:1f:00:06"), IP: netip.MustParseAddr("172.31.0.6"),
				EgressRestricted: true,
				Egress:           []Rule{{Protocol: "udp", PortMin: 53, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}},
			},
			{
				Device: "ourpaaaa", MAC: mac("0a:58:ac:1f:00:05"), IP: netip.MustParseAddr("172.31.0.5"),
				FloatingIP: netip.MustParseAddr("10.99.0.100"),
				Ingress: []Rule{
					{Protocol: "tcp", PortMin: 22, PortMax: 22, CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")}},
					{Protocol: "tcp", PortMin: 8000, PortMax: 8080, CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}},
					{Protocol: "icmp", CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
					{Protocol: "all", CIDRs: nil}, // a source group without members
				},
			},
		},
	}
}

func TestRouterRuleset(t *testing.T) {
	tests := []struct {
		name    string
		nat     bool
		want    []string
		notWant []string
	}{
		{
			name: "nat on",
			nat:  true,
			want: []string{
				"table ip ouro {}\ndelete table ip ouro\n",
				`ip daddr 10.99.0.100 dnat to 172.31.0.5`,
				`oifname "transit" ip saddr 172.31.0.5 snat to 10.99.0.100` + "\n\t\t" + `oifname "transit" ip saddr 172.31.0.0/20 masquerade`,
				`ip daddr vmap { 172.31.0.5 : jump in-ourpaaaa, 172.31.0.6 : jump in-ourpbbbb }`,
				`ip saddr vmap { 172.31.0.6 : jump out-ourpbbbb }`,
				`ip saddr { 10.0.0.0/8 } tcp dport 22 accept`,
				`ip saddr { 192.0.2.7/32 } tcp dport 8000-8080 accept`,
				`ip saddr { 0.0.0.0/0 } meta l4proto icmp accept`,
				`ip daddr { 0.0.0.0/0 } udp dport 53 return`,
				`iifname "ourpaaaa" jump spoof-ourpaaaa`,
				`ether type ip ip saddr != { 0.0.0.0, 172.31.0.5 } drop`,
				`iifname "ourx5001" arp daddr ip 172.31.0.1 drop`,
				`ip daddr 169.254.169.254 iifname != "br0" drop`,
			},
			notWant: []string{"10.1.0.0/16", "out-ourpaaaa", "ip saddr 172.31.0.0/20 drop"},
		},
		{
			name:    "nat off",
			nat:     false,
			want:    []string{`oifname "transit" ip saddr 172.31.0.0/20 drop`, `oifname "transit" ip saddr 172.31.0.5 accept`},
			notWant: []string{"masquerade"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := RouterRuleset(testRouter(tt.nat))
			if err != nil {
				t.Fatal(err)
			}
			checkRuleset(t, rs, tt.want, tt.notWant)
		})
	}
}

// checkRuleset reports each of want that ruleset rs lacks and each of
// notWant that it has.
func checkRuleset(t *testing.T, rs string, want, notWant []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(rs, w) {
			t.Errorf("ruleset lacks %q:\n%s", w, rs)
		}
	}
	for _, w := range notWant {
		if strings.Contains(rs, w) {
			t.Errorf("ruleset has %q:\n%s", w, rs)
		}
	}
}

func TestRouterRulesetRefusesBadNames(t *testing.T) {
	r := testRouter(true)
	r.Ports[0].Device = `x" drop`
	if _, err := RouterRuleset(r); err == nil {
		t.Error("a device name with a quote was accepted")
	}
	if _, err := HostRuleset("eth0; flush ruleset", "ourt*", nil); err == nil {
		t.Error("an underlay name with a semicolon was accepted")
	}
}

func TestNormalize(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		in, want []netip.Prefix
	}{
		{nil, nil},
		{[]netip.Prefix{p("10.1.2.3/8")}, []netip.Prefix{p("10.0.0.0/8")}},
		{[]netip.Prefix{p("10.1.0.0/16"), p("10.0.0.0/8"), p("10.0.0.0/8")}, []netip.Prefix{p("10.0.0.0/8")}},
		{[]netip.Prefix{p("192.0.2.9/32"), p("192.0.2.1/32"), p("::/0")}, []netip.Prefix{p("192.0.2.1/32"), p("192.0.2.9/32")}},
		{[]netip.Prefix{p("0.0.0.0/0"), p("192.0.2.1/32")}, []netip.Prefix{p("0.0.0.0/0")}},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Normalize(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestLoad loads the rulesets into a scratch namespace: the kernel and nft
// accept them, loading twice gives the same result, and Delete removes
// only ouro's tables.
func TestLoad(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "nft")
	dir := t.TempDir()
	ns := filepath.Join(dir, "ns")
	if _, err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	if err := Load(ns, "table inet foreign {}\n"); err != nil {
		t.Fatal(err)
	}
	for _, nat := range []bool{true, false} {
		r := testRouter(nat)
		r.Ports = append(r.Ports, testLBPort())
		rs, err := RouterRuleset(r)
		if err != nil {
			t.Fatal(err)
		}
		host, err := HostRuleset("eth0", "ourt*", []uint16{7443})
		if err != nil {
			t.Fatal(err)
		}
		if err := Load(ns, rs+host); err != nil {
			t.Fatal(err)
		}
	}
	list := func() string {
		out, err := netns.Run(ns, "", "nft", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := list()
	r := testRouter(false)
	r.Ports = append(r.Ports, testLBPort())
	rs, _ := RouterRuleset(r)
	host, _ := HostRuleset("eth0", "ourt*", []uint16{7443})
	if err := Load(ns, rs+host); err != nil {
		t.Fatal(err)
	}
	if again := list(); again != first {
		t.Errorf("loading the same ruleset twice differs:\n%s\n---\n%s", first, again)
	}
	if err := Load(ns, Delete(RouterNAT)+Delete(RouterFilter)+Delete(RouterBridge)+Delete(Host)+Delete(Host)); err != nil {
		t.Fatal(err)
	}
	out := list()
	if strings.Contains(out, "ouro") || !strings.Contains(out, "table inet foreign") {
		t.Errorf("after Delete: %s", out)
	}
}

// testLBPort is a load balancer's port: VIP, floating IP, listener and
// VRRP peer rules.
func testLBPort() Port {
	mac, _ := net.ParseMAC("0a:58:ac:1f:00:14")
	return Port{
		Device: "ourplb", MAC: mac, IP: netip.MustParseAddr("172.31.0.20"),
		VIP: netip.MustParseAddr("172.31.0.10"), FloatingIP: netip.MustParseAddr("10.99.0.100"),
		Ingress: []Rule{
			{Protocol: "tcp", PortMin: 80, CIDRs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
			{Protocol: "all", CIDRs: []netip.Prefix{netip.MustParsePrefix("172.31.0.21/32")}},
		},
		EgressRestricted: true,
	}
}

// TestRouterRulesetLBPort: a load balancer's port admits its VIP as a
// source, is matched by its VIP as a destination, and its floating IP
// leads to the VIP.
func TestRouterRulesetLBPort(t *testing.T) {
	lb := testLBPort()
	tests := []struct {
		name    string
		nat     bool
		want    []string
		notWant []string
	}{
		{
			name: "nat on",
			nat:  true,
			want: []string{
				`ip daddr 10.99.0.100 dnat to 172.31.0.10`,
				`oifname "transit" ip saddr 172.31.0.10 snat to 10.99.0.100`,
				`172.31.0.10 : jump in-ourplb`,
				`172.31.0.20 : jump in-ourplb`,
				`172.31.0.10 : jump out-ourplb`,
				`ip saddr { 0.0.0.0/0 } tcp dport 80 accept`,
				// VRRP (IP protocol 112) from the peer: no protocol match.
				"ip saddr { 172.31.0.21/32 } accept\n",
				`ether type ip ip saddr != { 0.0.0.0, 172.31.0.20, 172.31.0.10 } drop`,
				`ether type arp arp saddr ip != { 0.0.0.0, 172.31.0.20, 172.31.0.10 } drop`,
			},
			notWant: []string{`dnat to 172.31.0.20`, `snat to 10.99.0.100` + "\n\t\t" + `oifname "transit" ip saddr 172.31.0.20 snat`},
		},
		{
			name: "nat off",
			nat:  false,
			want: []string{`oifname "transit" ip saddr 172.31.0.10 accept`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRouter(tt.nat)
			r.Ports = append(r.Ports, lb)
			rs, err := RouterRuleset(r)
			if err != nil {
				t.Fatal(err)
			}
			checkRuleset(t, rs, tt.want, tt.notWant)
		})
	}
	bad := testRouter(true)
	bad.Ports = append(bad.Ports, lb)
	bad.Ports[2].VIP = bad.Ports[2].IP
	if _, err := RouterRuleset(bad); err == nil {
		t.Error("a VIP equal to the port's address was accepted")
	}
}

// TestRouterRulesetSiblings: traffic from the other subnets of the VPC
// to an address that is not a port here passes before conntrack's
// invalid check (the router only carries it across); to a port here it
// meets the port's ingress rules.
func TestRouterRulesetSiblings(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ports bool
		want  string
	}{
		{"with ports", true, "ip saddr { 10.0.2.0/24, 10.0.3.0/24 } ip daddr != { 172.31.0.5, 172.31.0.6 } accept"},
		{"without ports", false, "ip saddr { 10.0.2.0/24, 10.0.3.0/24 } accept"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := testRouter(true)
			if !tt.ports {
				r.Ports = nil
			}
			r.Siblings = []netip.Prefix{netip.MustParsePrefix("10.0.3.0/24"), netip.MustParsePrefix("10.0.2.0/24")}
			rs, err := RouterRuleset(r)
			if err != nil {
				t.Fatal(err)
			}
			at, inv := strings.Index(rs, tt.want), strings.Index(rs, "ct state invalid drop")
			if at < 0 || inv < 0 || at > inv {
				t.Errorf("want %q before the invalid drop in:\n%s", tt.want, rs)
			}
		})
	}
}
