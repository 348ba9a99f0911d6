package dnsmasq

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestArgsAndFiles(t *testing.T) {
	mac, _ := net.ParseMAC("0a:58:ac:1f:00:05")
	c := Config{
		Dir: "/state/5001", NetNS: "/run/netns/ouro-n5001",
		CIDR: netip.MustParsePrefix("172.31.0.0/20"), Gateway: netip.MustParseAddr("172.31.0.1"),
		Upstream: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, AddressDomain: "ouro-1.compute.internal",
		Hosts: []Host{{MAC: mac, IP: netip.MustParseAddr("172.31.0.5"), Name: "web"}},
		Records: []Record{
			{Name: "web", IP: netip.MustParseAddr("172.31.0.5")},
			{Name: "bad name\n1.2.3.4 evil", IP: netip.MustParseAddr("172.31.0.6")},
		},
	}
	args := c.Args()
	for _, want := range []string{
		"--bind-interfaces", "--listen-address=172.31.0.1", "--no-resolv", "--no-hosts",
		"--dhcp-range=172.31.0.0,static,255.255.240.0,12h", "--dhcp-ignore=tag:!known",
		"--server=192.0.2.53", "--pid-file=/state/5001/dnsmasq.pid",
		"--dhcp-hostsfile=/state/5001/dhcp-hosts", "--addn-hosts=/state/5001/hosts",
		"--synth-domain=ouro-1.compute.internal,172.31.0.0/20,ip-",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %q: %v", want, args)
		}
	}
	dhcp, hosts := c.files()
	if string(dhcp) != "0a:58:ac:1f:00:05,172.31.0.5,web\n" {
		t.Errorf("dhcp-hosts = %q", dhcp)
	}
	if string(hosts) != "172.31.0.5 web\n" || strings.Contains(string(hosts), "evil") {
		t.Errorf("hosts = %q (invalid names must be dropped)", hosts)
	}
}

func TestValidName(t *testing.T) {
	tests := map[string]bool{
		"web": true, "web-1": true, "a.b": true, "": false, "-x": false,
		"x-": false, "a..b": false, "a b": false, "a\nb": false, strings.Repeat("a", 64): false,
	}
	for in, want := range tests {
		if got := validName(in); got != want {
			t.Errorf("validName(%q) = %v, want %v", in, got, want)
		}
	}
}
