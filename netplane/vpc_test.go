package netplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// vpcSpecs is VPC "p/v" with subnets A (10.0.1.0/24, VNI 7001) and B
// (10.0.2.0/24, VNI 7002), VPC "p/w" with subnet C (10.0.3.0/24, VNI
// 7003) and network D (10.0.4.0/24, VNI 7004) in no VPC; instances a1
// (A) and b1 (B) and d1 (D) on h1, b2 (B) and c2 (C) on h2. As the
// network controller does, each host has every subnet of a VPC it has a
// port in, and the VXLAN peers of a subnet are every host that has it.
func vpcSpecs() (h1, h2 api.HostNetworkSpec, ports map[string]*api.HostPort) {
	entry := func(vni int, name, cidr, gw, vpc string) api.HostNetworkEntry {
		return api.HostNetworkEntry{UID: uid(vni), Name: name, Project: "p", VNI: vni, CIDR: cidr, Gateway: gw, NAT: true, VPC: vpc}
	}
	a1 := portSpec(31, "a1", "10.0.1.5")
	b1 := portSpec(32, "b1", "10.0.2.5")
	b2 := portSpec(33, "b2", "10.0.2.6")
	c2 := portSpec(34, "c2", "10.0.3.5")
	d1 := portSpec(35, "d1", "10.0.4.5")
	for _, p := range []*api.HostPort{&a1, &b1, &b2, &c2, &d1} {
		p.Ingress = []api.FirewallRule{allowAll}
	}
	a, b := entry(7001, "a", "10.0.1.0/24", "10.0.1.1", "p/v"), entry(7002, "b", "10.0.2.0/24", "10.0.2.1", "p/v")
	c, d := entry(7003, "c", "10.0.3.0/24", "10.0.3.1", "p/w"), entry(7004, "d", "10.0.4.0/24", "10.0.4.1", "")
	a.Peers, b.Peers = []string{"10.99.0.12"}, []string{"10.99.0.12"}
	a1e, b1e, d1e := a, b, d
	a1e.Ports, b1e.Ports, d1e.Ports = []api.HostPort{a1}, []api.HostPort{b1}, []api.HostPort{d1}
	a.Peers, b.Peers = []string{"10.99.0.11"}, []string{"10.99.0.11"}
	a2e, b2e, c2e := a, b, c
	b2e.Ports, c2e.Ports = []api.HostPort{b2}, []api.HostPort{c2}
	h1 = api.HostNetworkSpec{Networks: []api.HostNetworkEntry{a1e, b1e, d1e}}
	h2 = api.HostNetworkSpec{Networks: []api.HostNetworkEntry{a2e, b2e, c2e}}
	ports = map[string]*api.HostPort{
		"a1": &h1.Networks[0].Ports[0], "b1": &h1.Networks[1].Ports[0], "d1": &h1.Networks[2].Ports[0],
		"b2": &h2.Networks[1].Ports[0], "c2": &h2.Networks[2].Ports[0],
	}
	return h1, h2, ports
}

func TestVPCRouting(t *testing.T) {
	l := newLab(t)
	s1, s2, ports := vpcSpecs()
	l.apply("h1", s1)
	l.apply("h2", s2)
	ns := func(name string) string {
		host := "h1"
		if strings.HasSuffix(name, "2") {
			host = "h2"
		}
		return l.host[host].plane.NetNSPath(ports[name].Instance)
	}
	connect := func(from, addr string) bool {
		out, _ := run(ns(from), 10*time.Second, "busybox", "nc", "-w", "2", addr, "8080")
		return strings.Contains(out, "hello")
	}

	listen(t, ns("b2"))
	listen(t, ns("a1"))

	t.Run("subnets on one host", func(t *testing.T) {
		mustPing(t, ns("a1"), "10.0.2.5")
		mustPing(t, ns("b1"), "10.0.1.5")
	})
	t.Run("subnets across hosts", func(t *testing.T) {
		mustPing(t, ns("a1"), "10.0.2.6")
		mustPing(t, ns("b2"), "10.0.1.5")
		// TCP needs every packet of both directions through: the routers
		// on the way see one direction only.
		wait.For(t, 15*time.Second, "a1 connects to b2", func() bool { return connect("a1", "10.0.2.6") })
		wait.For(t, 15*time.Second, "b2 connects to a1", func() bool { return connect("b2", "10.0.1.5") })
	})
	t.Run("isolation", func(t *testing.T) {
		mustNotPing(t, ns("d1"), "10.0.1.5") // network in no VPC
		mustNotPing(t, ns("a1"), "10.0.4.5")
		mustNotPing(t, ns("c2"), "10.0.2.6") // another VPC
		mustNotPing(t, ns("c2"), "10.0.1.5")
		mustNotPing(t, ns("b2"), "10.0.3.5")
		mustNotPing(t, ns("a1"), "10.0.3.5")
	})
	t.Run("security groups see the source", func(t *testing.T) {
		// b2 admits tcp 8080 from subnet A only: a1 connects, its pings
		// are dropped; b1 (subnet B, another address) is refused.
		ports["b2"].Ingress = []api.FirewallRule{{Protocol: "tcp", PortMin: 8080, PortMax: 8080, CIDRs: []string{"10.0.1.0/24"}}}
		l.apply("h2", s2)
		wait.For(t, 15*time.Second, "a1 connects to b2", func() bool { return connect("a1", "10.0.2.6") })
		mustNotPing(t, ns("a1"), "10.0.2.6")
		if connect("b1", "10.0.2.6") {
			t.Error("b1 reached b2:8080, allowed only from 10.0.1.0/24")
		}
		ports["b2"].Ingress = []api.FirewallRule{{Protocol: "tcp", PortMin: 8080, PortMax: 8080, CIDRs: []string{"10.0.9.0/24"}}}
		l.apply("h2", s2)
		if connect("a1", "10.0.2.6") {
			t.Error("a1 reached b2:8080, allowed only from 10.0.9.0/24")
		}
	})
	t.Run("repeated apply changes nothing", func(t *testing.T) {
		routers := []string{l.host["h1"].plane.routerNSPath(7001), l.host["h1"].plane.routerNSPath(7002)}
		before := l.snapshot("h1", routers...)
		l.apply("h1", s1)
		if after := l.snapshot("h1", routers...); after != before {
			t.Errorf("a second Apply changed the host:\n--- before\n%s\n--- after\n%s", before, after)
		}
	})
	t.Run("subnet leaves", func(t *testing.T) {
		// Without b1, h1 keeps B (b2 is on it) but b1's port goes; with
		// subnet A gone from h2, its leg from B goes too.
		s2.Networks = s2.Networks[1:]
		l.apply("h2", s2)
		router := l.host["h2"].plane.routerNSPath(7002)
		if out := l.ip(router, "link"); strings.Contains(out, legRouterName(7001)) {
			t.Errorf("leg to a removed subnet left:\n%s", out)
		}
		if out := l.ip(router, "route"); strings.Contains(out, "10.0.1.0/24") {
			t.Errorf("route to a removed subnet left:\n%s", out)
		}
	})
}

func TestVPCOverlappingSubnetsRefused(t *testing.T) {
	s1, _, _ := vpcSpecs()
	s1.Networks[1].CIDR, s1.Networks[1].Gateway = "10.0.1.128/25", "10.0.1.129"
	s1.Networks[1].Ports[0].IP = "10.0.1.130"
	if _, err := parseSpec(s1, func() []netip.Addr { return nil }); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("parseSpec of overlapping subnets: %v, want an overlap error", err)
	}
}
