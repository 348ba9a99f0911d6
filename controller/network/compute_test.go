package network

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func host(name, addr string) *api.Host {
	return &api.Host{Metadata: api.ObjectMeta{Name: name}, Status: api.HostStatus{Address: addr}}
}

func netw(project, name, uid string, vni int, cidr string) *api.Network {
	return &api.Network{Metadata: api.ObjectMeta{Project: project, Name: name, UID: uid},
		Spec:   api.NetworkSpec{CIDR: cidr, Gateway: "10.0.0.1", DNS: []string{"9.9.9.9"}},
		Status: api.NetworkStatus{VNI: vni}}
}

// inst makes an instance of project p with one interface per "network=ip"
// pair, attached with groups.
func inst(p, name, onHost string, phase api.InstancePhase, groups []string, ifaces ...string) *api.Instance {
	in := &api.Instance{Metadata: api.ObjectMeta{Project: p, Name: name, UID: "uid-" + name},
		Status: api.InstanceStatus{Host: onHost, Phase: phase}}
	for i := 0; i+1 < len(ifaces); i += 2 {
		in.Spec.Networks = append(in.Spec.Networks, api.NetworkAttachment{Network: ifaces[i], SecurityGroups: groups})
		in.Status.Interfaces = append(in.Status.Interfaces, api.Interface{Network: ifaces[i], IP: ifaces[i+1], MAC: "mac-" + ifaces[i+1]})
	}
	return in
}

func group(p, name string, rules ...api.SecurityGroupRule) *api.SecurityGroup {
	return &api.SecurityGroup{Metadata: api.ObjectMeta{Project: p, Name: name}, Spec: api.SecurityGroupSpec{Rules: rules}}
}

func fip(p, name, addr, instance string) *api.FloatingIP {
	return &api.FloatingIP{Metadata: api.ObjectMeta{Project: p, Name: name},
		Spec: api.FloatingIPSpec{Instance: instance}, Status: api.FloatingIPStatus{Address: addr}}
}

var (
	fromDefault = api.SecurityGroupRule{Direction: "ingress", Protocol: "all", SourceGroup: "default"}
	web80       = api.SecurityGroupRule{Direction: "ingress", Protocol: "tcp", PortMin: 80, PortMax: 80, CIDR: "0.0.0.0/0"}
	dnsOut      = api.SecurityGroupRule{Direction: "egress", Protocol: "udp", PortMin: 53, PortMax: 53, CIDR: "10.0.0.0/8"}
)

// base is a project p with networks n (10.0.0.0/24) and m, groups
// default and web, and three hosts.
func base() Snapshot {
	return Snapshot{
		Hosts:    []*api.Host{host("h1", "10.99.0.1"), host("h2", "10.99.0.2"), host("h3", "10.99.0.3")},
		Networks: []*api.Network{netw("p", "n", "uid-n", 4096, "10.0.0.0/24"), netw("p", "m", "uid-m", 4097, "10.1.0.0/24")},
		Groups:   []*api.SecurityGroup{group("p", "default", fromDefault), group("p", "web", web80), group("p", "dns", dnsOut)},
	}
}

func TestHostSpec(t *testing.T) {
	def := []string{"default"}
	tests := []struct {
		name  string
		edit  func(*Snapshot)
		host  string
		check func(t *testing.T, spec api.HostNetworkSpec)
	}{
		{
			name: "peers and records",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{
					inst("p", "a", "h1", api.PhaseRunning, def, "n", "10.0.0.2"),
					inst("p", "b", "h2", api.PhaseRunning, def, "n", "10.0.0.3"),
					inst("p", "c", "", api.PhasePending, def, "n", "10.0.0.4"),
					inst("p", "d", "h3", api.PhaseRunning, def, "m", "10.1.0.2"),
				}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				if len(spec.Networks) != 1 {
					t.Fatalf("%d entries, want 1", len(spec.Networks))
				}
				e := spec.Networks[0]
				if e.UID != "uid-n" || e.VNI != 4096 || e.CIDR != "10.0.0.0/24" || e.Gateway != "10.0.0.1" || !e.NAT || e.DNS[0] != "9.9.9.9" {
					t.Errorf("entry = %+v", e)
				}
				if !slices.Equal(e.Peers, []string{"10.99.0.2"}) {
					t.Errorf("peers = %v", e.Peers)
				}
				want := []api.DNSRecord{{Name: "a", IP: "10.0.0.2"}, {Name: "b", IP: "10.0.0.3"}, {Name: "c", IP: "10.0.0.4"}}
				if !slices.Equal(e.Records, want) {
					t.Errorf("records = %v", e.Records)
				}
				if len(e.Ports) != 1 || e.Ports[0].Instance != "uid-a" || e.Ports[0].MAC != "mac-10.0.0.2" || e.Ports[0].IP != "10.0.0.2" {
					t.Errorf("ports = %+v", e.Ports)
				}
			},
		},
		{
			name: "ports carry the instance's driver",
			edit: func(s *Snapshot) {
				v := inst("p", "v", "h1", api.PhaseRunning, def, "n", "10.0.0.2")
				v.Status.Driver = api.DriverVM
				c := inst("p", "w", "h1", api.PhaseRunning, def, "n", "10.0.0.3")
				c.Status.Driver = api.DriverContainer
				s.Instances = []*api.Instance{v, c}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				ps := spec.Networks[0].Ports
				if len(ps) != 2 || ps[0].Driver != api.DriverVM || ps[1].Driver != api.DriverContainer {
					t.Errorf("ports = %+v, want v on vm and w on container", ps)
				}
			},
		},
		{
			name: "host without instances has no networks",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{inst("p", "a", "h1", api.PhaseRunning, def, "n", "10.0.0.2")}
			},
			host:  "h2",
			check: func(t *testing.T, spec api.HostNetworkSpec) { wantEntries(t, spec, 0) },
		},
		{
			name: "terminated instances are excluded",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{
					inst("p", "a", "h1", api.PhaseRunning, def, "n", "10.0.0.2"),
					inst("p", "b", "h2", api.PhaseTerminated, def, "n", "10.0.0.3"),
					inst("p", "c", "h1", api.PhaseTerminated, def, "m", "10.1.0.3"),
				}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				if e := spec.Networks[0]; len(e.Peers) != 0 || len(e.Records) != 1 || e.Name != "n" {
					t.Errorf("entry = %+v", e)
				}
			},
		},
		{
			name: "two networks sorted, peers deduplicated",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{
					inst("p", "a", "h1", api.PhaseRunning, def, "n", "10.0.0.2", "m", "10.1.0.2"),
					inst("p", "b", "h2", api.PhaseRunning, def, "n", "10.0.0.3"),
					inst("p", "c", "h2", api.PhaseRunning, def, "n", "10.0.0.4"),
				}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 2)
				if spec.Networks[0].Name != "m" || spec.Networks[1].Name != "n" {
					t.Errorf("order %s, %s", spec.Networks[0].Name, spec.Networks[1].Name)
				}
				if !slices.Equal(spec.Networks[1].Peers, []string{"10.99.0.2"}) {
					t.Errorf("peers = %v", spec.Networks[1].Peers)
				}
			},
		},
		{
			name: "source groups expand to member addresses in any network",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{
					inst("p", "a", "h1", api.PhaseRunning, []string{"default", "web"}, "n", "10.0.0.2"),
					inst("p", "b", "h2", api.PhaseRunning, def, "m", "10.1.0.9", "n", "10.0.0.3"),
					inst("p", "x", "h2", api.PhaseRunning, []string{"web"}, "n", "10.0.0.7"),
					inst("p", "z", "h2", api.PhaseTerminated, def, "n", "10.0.0.8"),
					inst("q", "other", "h2", api.PhaseRunning, def, "n", "10.0.0.9"),
				}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				p := spec.Networks[0].Ports[0]
				want := []api.FirewallRule{
					{Protocol: "all", CIDRs: []string{"10.0.0.2/32", "10.0.0.3/32", "10.1.0.9/32"}},
					{Protocol: "tcp", PortMin: 80, PortMax: 80, CIDRs: []string{"0.0.0.0/0"}},
				}
				if !jsonEq(p.Ingress, want) {
					t.Errorf("ingress = %s", js(p.Ingress))
				}
				if p.EgressRestricted || len(p.Egress) != 0 {
					t.Errorf("egress = %v %+v", p.EgressRestricted, p.Egress)
				}
			},
		},
		{
			name: "egress rules restrict egress; duplicate rules merge",
			edit: func(s *Snapshot) {
				s.Groups = append(s.Groups, group("p", "dns2", dnsOut))
				s.Instances = []*api.Instance{inst("p", "a", "h1", api.PhaseRunning, []string{"dns", "dns2"}, "n", "10.0.0.2")}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				p := spec.Networks[0].Ports[0]
				if !p.EgressRestricted || !jsonEq(p.Egress, []api.FirewallRule{{Protocol: "udp", PortMin: 53, PortMax: 53, CIDRs: []string{"10.0.0.0/8"}}}) || len(p.Ingress) != 0 {
					t.Errorf("port = %s", js(p))
				}
			},
		},
		{
			name: "a source group without members allows nothing",
			edit: func(s *Snapshot) {
				s.Groups = append(s.Groups, group("p", "from-empty", api.SecurityGroupRule{Direction: "ingress", Protocol: "all", SourceGroup: "empty"}), group("p", "empty"))
				s.Instances = []*api.Instance{inst("p", "a", "h1", api.PhaseRunning, []string{"from-empty"}, "n", "10.0.0.2")}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				if in := spec.Networks[0].Ports[0].Ingress; !jsonEq(in, []api.FirewallRule{{Protocol: "all", CIDRs: []string{}}}) {
					t.Errorf("ingress = %s", js(in))
				}
			},
		},
		{
			name: "floating IP on the instance's host",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{
					inst("p", "a", "h1", api.PhaseRunning, def, "n", "10.0.0.2", "m", "10.1.0.2"),
					inst("p", "b", "h1", api.PhaseRunning, def, "n", "10.0.0.3"),
				}
				s.FloatingIPs = []*api.FloatingIP{fip("p", "f", "192.0.2.10", "a"), fip("p", "g", "192.0.2.11", "")}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				m, n := spec.Networks[0], spec.Networks[1]
				if n.Ports[0].Name != "a" || n.Ports[0].FloatingIP != "192.0.2.10" || n.Ports[1].FloatingIP != "" {
					t.Errorf("ports of n = %s", js(n.Ports))
				}
				if m.Ports[0].FloatingIP != "" {
					t.Errorf("floating IP on the second interface too: %s", js(m.Ports))
				}
			},
		},
		{
			name: "a moved instance takes its floating IP along",
			edit: func(s *Snapshot) {
				s.Instances = []*api.Instance{inst("p", "a", "h2", api.PhaseRunning, def, "n", "10.0.0.2"), inst("p", "b", "h1", api.PhaseRunning, def, "n", "10.0.0.3")}
				s.FloatingIPs = []*api.FloatingIP{fip("p", "f", "192.0.2.10", "a")}
			},
			host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				for _, p := range spec.Networks[0].Ports {
					if p.FloatingIP != "" {
						t.Errorf("old host still has the floating IP: %s", js(p))
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.edit(&s)
			spec := NewIndex(s).HostSpec(tt.host)
			tt.check(t, spec)
			// The result does not depend on the order of the input.
			slices.Reverse(s.Instances)
			slices.Reverse(s.Groups)
			slices.Reverse(s.Hosts)
			slices.Reverse(s.FloatingIPs)
			if again := NewIndex(s).HostSpec(tt.host); !SpecEqual(spec, again) {
				t.Errorf("order changed the result:\n%s\n%s", js(spec), js(again))
			}
		})
	}
}

func TestFloatingIPStatus(t *testing.T) {
	s := base()
	a := inst("p", "a", "h1", api.PhaseRunning, nil, "n", "10.0.0.2")
	s.Instances = []*api.Instance{a, inst("p", "gone", "h1", api.PhaseTerminated, nil, "n", "10.0.0.3"),
		inst("p", "new", "", api.PhasePending, nil, "n", "10.0.0.4")}
	tests := []struct {
		name string
		f    *api.FloatingIP
		want api.FloatingIPStatus
	}{
		{"associated", fip("p", "f", "192.0.2.1", "a"), api.FloatingIPStatus{Address: "192.0.2.1", Host: "h1", InstanceIP: "10.0.0.2"}},
		{"unassociated", fip("p", "f", "192.0.2.1", ""), api.FloatingIPStatus{Address: "192.0.2.1"}},
		{"missing instance", fip("p", "f", "192.0.2.1", "nope"), api.FloatingIPStatus{Address: "192.0.2.1"}},
		{"other project", fip("q", "f", "192.0.2.1", "a"), api.FloatingIPStatus{Address: "192.0.2.1"}},
		{"terminated", fip("p", "f", "192.0.2.1", "gone"), api.FloatingIPStatus{Address: "192.0.2.1"}},
		{"unplaced", fip("p", "f", "192.0.2.1", "new"), api.FloatingIPStatus{Address: "192.0.2.1"}},
	}
	x := NewIndex(s)
	for _, tt := range tests {
		if got := x.FloatingIPStatus(tt.f); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// Moving the instance moves the floating IP.
	a.Status.Host = "h2"
	if got := NewIndex(s).FloatingIPStatus(fip("p", "f", "192.0.2.1", "a")); got.Host != "h2" {
		t.Errorf("after move: %+v", got)
	}
}

func wantEntries(t *testing.T, spec api.HostNetworkSpec, n int) {
	t.Helper()
	if len(spec.Networks) != n {
		t.Fatalf("%d entries, want %d: %s", len(spec.Networks), n, js(spec))
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonEq(a, b any) bool { return js(a) == js(b) }

// TestVPCHostSpec: a host with a port in a subnet of a VPC gets every
// other subnet of the VPC that has a port somewhere (without ports of its
// own, with the hosts of the subnet as peers), and nothing of other VPCs.
func TestVPCHostSpec(t *testing.T) {
	def := []string{"default"}
	s := base()
	sub := func(name, uid string, vni int, cidr, vpc string) *api.Network {
		n := netw("p", name, uid, vni, cidr)
		n.Spec.VPC = vpc
		return n
	}
	s.Networks = append(s.Networks,
		sub("a", "uid-a", 5001, "10.5.1.0/24", "v"), sub("b", "uid-b", 5002, "10.5.2.0/24", "v"),
		sub("e", "uid-e", 5003, "10.5.3.0/24", "v"), sub("c", "uid-c", 5004, "10.5.4.0/24", "w"))
	s.Instances = []*api.Instance{
		inst("p", "a1", "h1", api.PhaseRunning, def, "a", "10.5.1.2"),
		inst("p", "b2", "h2", api.PhaseRunning, def, "b", "10.5.2.2"),
		inst("p", "c3", "h3", api.PhaseRunning, def, "c", "10.5.4.2"),
		inst("p", "n3", "h3", api.PhaseRunning, def, "n", "10.0.0.2"),
	}
	x := NewIndex(s)
	names := func(spec api.HostNetworkSpec) map[string]api.HostNetworkEntry {
		out := map[string]api.HostNetworkEntry{}
		for _, e := range spec.Networks {
			out[e.Name] = e
		}
		return out
	}
	h1 := names(x.HostSpec("h1"))
	if len(h1) != 2 || h1["a"].VPC != "p/v" || h1["b"].VPC != "p/v" {
		t.Fatalf("h1 entries = %v, want subnets a and b of p/v (e has no port, c and n are elsewhere)", h1)
	}
	if b := h1["b"]; len(b.Ports) != 0 || !slices.Equal(b.Peers, []string{"10.99.0.2"}) {
		t.Errorf("h1's b = %+v, want no ports and h2 as peer", b)
	}
	if a := h1["a"]; len(a.Ports) != 1 || !slices.Equal(a.Peers, []string{"10.99.0.2"}) {
		t.Errorf("h1's a = %+v, want a1's port and h2 (which routes into a) as peer", a)
	}
	h3 := names(x.HostSpec("h3"))
	if len(h3) != 2 || h3["c"].VPC != "p/w" || h3["n"].VPC != "" {
		t.Errorf("h3 entries = %v, want c (VPC p/w) and n (none) only", h3)
	}
}
