package netplane

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestTransitPrefixes(t *testing.T) {
	tests := []struct {
		vni          int
		host, router string
	}{
		{4096, "100.64.64.1/30", "100.64.64.2/30"},
		{4097, "100.64.64.5/30", "100.64.64.6/30"},
		{1<<20 - 1, "100.127.255.253/30", "100.127.255.254/30"},
	}
	transit := netip.MustParsePrefix("100.64.0.0/10")
	for _, tt := range tests {
		h, r := TransitPrefixes(tt.vni)
		if h.String() != tt.host || r.String() != tt.router {
			t.Errorf("TransitPrefixes(%d) = %s, %s; want %s, %s", tt.vni, h, r, tt.host, tt.router)
		}
		if !transit.Contains(h.Addr()) || !transit.Contains(r.Addr()) {
			t.Errorf("TransitPrefixes(%d) outside 100.64.0.0/10", tt.vni)
		}
	}
}

func TestNames(t *testing.T) {
	u := "0123abcd-ef01-4222-8333-444455556666"
	for _, n := range []string{portDevName(u), transitName(1<<24 - 1), vxlanName(1<<24 - 1)} {
		if len(n) > 15 {
			t.Errorf("device name %q longer than 15", n)
		}
	}
	if got := instanceNSName(u); got != "ouro-i0123abcdef01" {
		t.Errorf("instanceNSName = %q", got)
	}
	if got := GatewayMAC(5001).String(); got != "0e:00:00:00:13:89" {
		t.Errorf("GatewayMAC(5001) = %s", got)
	}
}

func TestParseSpec(t *testing.T) {
	good := func() api.HostNetworkEntry {
		return api.HostNetworkEntry{
			UID: "n1", Name: "default", VNI: 5001, CIDR: "172.31.0.0/20", Gateway: "172.31.0.1",
			Ports: []api.HostPort{{Instance: uid(1), Name: "a", MAC: "0a:58:ac:1f:00:05", IP: "172.31.0.5"}},
		}
	}
	tests := []struct {
		name   string
		change func(e *api.HostNetworkEntry)
		errHas string
	}{
		{"valid", func(e *api.HostNetworkEntry) {}, ""},
		{"bad cidr", func(e *api.HostNetworkEntry) { e.CIDR = "172.31.0.0/33" }, "cidr"},
		{"gateway outside", func(e *api.HostNetworkEntry) { e.Gateway = "10.0.0.1" }, "gateway"},
		{"vni zero", func(e *api.HostNetworkEntry) { e.VNI = 0 }, "vni"},
		{"bad mac", func(e *api.HostNetworkEntry) { e.Ports[0].MAC = "01:00:5e:00:00:01" }, "mac"},
		{"ip outside", func(e *api.HostNetworkEntry) { e.Ports[0].IP = "10.0.0.5" }, "ip"},
		{"bad protocol", func(e *api.HostNetworkEntry) {
			e.Ports[0].Ingress = []api.FirewallRule{{Protocol: "sctp", CIDRs: []string{"0.0.0.0/0"}}}
		}, "protocol"},
		{"bad ports", func(e *api.HostNetworkEntry) {
			e.Ports[0].Ingress = []api.FirewallRule{{Protocol: "tcp", PortMin: 90, PortMax: 80}}
		}, "port range"},
		{"bad rule cidr", func(e *api.HostNetworkEntry) {
			e.Ports[0].Ingress = []api.FirewallRule{{Protocol: "all", CIDRs: []string{"x; flush ruleset"}}}
		}, "cidr"},
		{"bad dns", func(e *api.HostNetworkEntry) { e.DNS = []string{"dns.example"} }, "dns"},
		{"lb port", func(e *api.HostNetworkEntry) { e.Ports[0].Driver, e.Ports[0].VIP = "lb", "172.31.0.10" }, ""},
		{"vip outside", func(e *api.HostNetworkEntry) { e.Ports[0].Driver, e.Ports[0].VIP = "lb", "10.0.0.10" }, "vip"},
		{"vip is the port's ip", func(e *api.HostNetworkEntry) { e.Ports[0].Driver, e.Ports[0].VIP = "lb", "172.31.0.5" }, "vip"},
		{"vip is the gateway", func(e *api.HostNetworkEntry) { e.Ports[0].Driver, e.Ports[0].VIP = "lb", "172.31.0.1" }, "gateway"},
		{"vip is another port's ip", func(e *api.HostNetworkEntry) {
			e.Ports[0].Driver, e.Ports[0].VIP = "lb", "172.31.0.6"
			e.Ports = append(e.Ports, api.HostPort{Instance: uid(2), Name: "b", MAC: "0a:58:ac:1f:00:06", IP: "172.31.0.6"})
		}, "also port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := good()
			tt.change(&e)
			nets, err := parseSpec(api.HostNetworkSpec{Networks: []api.HostNetworkEntry{e}}, func() []netip.Addr { return nil })
			if tt.errHas == "" {
				if err != nil || len(nets) != 1 || nets[0].ports[0].ifname != "eth0" {
					t.Fatalf("parseSpec = %+v, %v", nets, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("parseSpec error = %v, want one mentioning %q", err, tt.errHas)
			}
		})
	}
}

func TestParseSpecInterfaceOrderAndDefaults(t *testing.T) {
	p := api.HostPort{Instance: uid(1), Name: "a", MAC: "0a:58:ac:1f:00:05", IP: "172.31.0.5"}
	q := p
	q.IP, q.MAC = "10.0.0.5", "0a:58:0a:00:00:05"
	spec := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{
		{UID: "n1", VNI: 5001, CIDR: "172.31.0.0/20", Gateway: "172.31.0.1", Ports: []api.HostPort{p}},
		{UID: "n2", VNI: 5002, CIDR: "10.0.0.0/24", Gateway: "10.0.0.1", DNS: []string{"192.0.2.1"}, Ports: []api.HostPort{q}},
	}}
	host := []netip.Addr{netip.MustParseAddr("192.0.2.53")}
	nets, err := parseSpec(spec, func() []netip.Addr { return host })
	if err != nil {
		t.Fatal(err)
	}
	if nets[0].ports[0].ifname != "eth0" || nets[1].ports[0].ifname != "eth1" {
		t.Errorf("interfaces = %s, %s; want eth0, eth1", nets[0].ports[0].ifname, nets[1].ports[0].ifname)
	}
	if len(nets[0].dns) != 1 || nets[0].dns[0] != host[0] || nets[1].dns[0].String() != "192.0.2.1" {
		t.Errorf("dns = %v, %v", nets[0].dns, nets[1].dns)
	}
	spec.Networks[1].VNI = 5001
	if _, err := parseSpec(spec, func() []netip.Addr { return nil }); err == nil {
		t.Error("duplicate VNI accepted")
	}
}

func TestResolvConfServers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("# c\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\nsearch x\nnameserver 192.0.2.2\n"), 0o644)
	got := ResolvConfServers(path)
	if len(got) != 2 || got[0].String() != "192.0.2.1" || got[1].String() != "192.0.2.2" {
		t.Errorf("ResolvConfServers = %v", got)
	}
	if ResolvConfServers(filepath.Join(t.TempDir(), "missing")) != nil {
		t.Error("a missing file gave servers")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{UnderlayAddress: "10.0.0.1"}); err == nil {
		t.Error("New without StateDir succeeded")
	}
	if _, err := New(Config{StateDir: "/x", UnderlayAddress: "eth0"}); err == nil {
		t.Error("New with a bad underlay address succeeded")
	}
	p, err := New(Config{StateDir: "/nonexistent/state", UnderlayAddress: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/nonexistent/state"); !os.IsNotExist(err) {
		t.Error("New created the state directory")
	}
	if got := p.NetNSPath(uid(1)); got != "/run/netns/ouro-i000000011111" {
		t.Errorf("NetNSPath = %s", got)
	}
	if p.InstanceDNS("n1") != nil {
		t.Error("InstanceDNS before Apply is not empty")
	}
}

// TestParseSpecVIP: only a load balancer's port has a VIP.
func TestParseSpecVIP(t *testing.T) {
	tests := []struct {
		driver string
		want   string // the port's vip, "invalid IP" when none
	}{
		{"lb", "172.31.0.10"},
		{"", "invalid IP"},
		{api.DriverVM, "invalid IP"},
	}
	for _, tt := range tests {
		p := api.HostPort{Instance: uid(1), Name: "a", MAC: "0a:58:ac:1f:00:05", IP: "172.31.0.5", Driver: tt.driver, VIP: "172.31.0.10"}
		spec := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{
			{UID: "n1", VNI: 5001, CIDR: "172.31.0.0/20", Gateway: "172.31.0.1", Ports: []api.HostPort{p}},
		}}
		nets, err := parseSpec(spec, func() []netip.Addr { return nil })
		if err != nil {
			t.Fatalf("driver %q: %v", tt.driver, err)
		}
		port := nets[0].ports[0]
		if got := port.vip.String(); got != tt.want {
			t.Errorf("driver %q: vip = %s, want %s", tt.driver, got, tt.want)
		}
		if port.lb != (tt.driver == "lb") {
			t.Errorf("driver %q: lb = %v", tt.driver, port.lb)
		}
	}
}
