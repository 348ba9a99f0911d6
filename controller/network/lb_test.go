package network

import (
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// lbOn makes load balancer web of project p on network n, placed on
// hosts (the first with address .101, the second .102).
func lbOn(hosts ...string) *api.LoadBalancer {
	lb := &api.LoadBalancer{
		Metadata: api.ObjectMeta{Project: "p", Name: "web", UID: "uid-lb"},
		Spec: api.LoadBalancerSpec{Network: "n", Hosts: len(hosts), DrainTimeoutSeconds: 45,
			Listeners: []api.Listener{
				{Name: "tcp-80", Protocol: api.ListenerTCP, Port: 80, DefaultPool: "web"},
				{Name: "https-443", Protocol: api.ListenerHTTPS, Port: 443, DefaultPool: "web", Certificate: "CERT", Key: "KEY",
					Rules: []api.ListenerRule{{PathPrefix: "/api", Pool: "web"}}},
			},
			Pools: []api.Pool{{Name: "web", Group: "web", Port: 8080, HealthMonitor: api.HealthMonitor{Type: api.MonitorHTTP, Path: "/healthz"}}},
		},
		Status: api.LoadBalancerStatus{
			NetworkUID: "uid-n", VIP: "10.0.0.100", FloatingIP: "192.0.2.50", VRID: 7,
			PortAddresses: []string{"10.0.0.101", "10.0.0.102"},
			Members: []api.LoadBalancerMember{
				{Pool: "web", Instance: "web-0", InstanceUID: "uid-web-0", Address: "10.0.0.2", Port: 8080, Weight: 1, State: api.MemberActive, Health: api.HealthUp},
				{Pool: "web", Instance: "web-1", InstanceUID: "uid-web-1", Address: "10.0.0.3", Port: 8080, Weight: 1, State: api.MemberDraining, Health: api.HealthUp},
			},
		},
	}
	for i, h := range hosts {
		lb.Status.Hosts = append(lb.Status.Hosts, api.LoadBalancerHost{Name: h, Address: lb.Status.PortAddresses[i], Priority: []int{200, 150}[i]})
	}
	return lb
}

// lbSnapshot is base() with instance web-0 on h1 and lbs.
func lbSnapshot(lbs ...*api.LoadBalancer) Snapshot {
	s := base()
	s.Instances = []*api.Instance{inst("p", "web-0", "h1", api.PhaseRunning, []string{"default"}, "n", "10.0.0.2")}
	s.LoadBalancers = lbs
	return s
}

func lbPortOf(e api.HostNetworkEntry) *api.HostPort {
	for i := range e.Ports {
		if e.Ports[i].Driver == lbDriver {
			return &e.Ports[i]
		}
	}
	return nil
}

func TestHostSpecLoadBalancers(t *testing.T) {
	tests := []struct {
		name  string
		snap  Snapshot
		host  string
		check func(t *testing.T, spec api.HostNetworkSpec)
	}{
		{
			name: "first LB host", snap: lbSnapshot(lbOn("h2", "h3")), host: "h2",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				e := spec.Networks[0]
				if !slices.Equal(e.Peers, []string{"10.99.0.1", "10.99.0.3"}) {
					t.Errorf("peers = %v, want the instance's host and the other LB host", e.Peers)
				}
				// The instance's name, and the VIP's under the LB's.
				if want := []api.DNSRecord{{Name: "web-0", IP: "10.0.0.2"}, {Name: "web.lb", IP: "10.0.0.100"}}; !slices.Equal(e.Records, want) {
					t.Errorf("records = %v, want %v", e.Records, want)
				}
				p := lbPortOf(e)
				if p == nil || len(e.Ports) != 1 {
					t.Fatalf("ports = %+v, want the LB port only", e.Ports)
				}
				if p.Instance != "uid-lb" || p.Name != "lb-web" || p.IP != "10.0.0.101" || p.MAC != "0a:58:0a:00:00:65" ||
					p.VIP != "10.0.0.100" || p.FloatingIP != "192.0.2.50" || p.EgressRestricted {
					t.Errorf("port = %+v", p)
				}
				want := []api.FirewallRule{
					{Protocol: "all", CIDRs: []string{"10.0.0.102/32"}},
					{Protocol: "tcp", PortMin: 443, PortMax: 443, CIDRs: []string{"0.0.0.0/0"}},
					{Protocol: "tcp", PortMin: 80, PortMax: 80, CIDRs: []string{"0.0.0.0/0"}},
				}
				if len(p.Ingress) != len(want) {
					t.Fatalf("ingress = %+v, want %+v", p.Ingress, want)
				}
				for _, w := range want {
					if !slices.ContainsFunc(p.Ingress, func(r api.FirewallRule) bool {
						return r.Protocol == w.Protocol && r.PortMin == w.PortMin && slices.Equal(r.CIDRs, w.CIDRs)
					}) {
						t.Errorf("ingress %+v lacks %+v", p.Ingress, w)
					}
				}
				if len(spec.LoadBalancers) != 1 {
					t.Fatalf("load balancers = %+v", spec.LoadBalancers)
				}
				hl := spec.LoadBalancers[0]
				if hl.UID != "uid-lb" || hl.Name != "web" || hl.Project != "p" || hl.NetworkUID != "uid-n" || hl.VIP != "10.0.0.100" ||
					hl.Address != "10.0.0.101" || hl.Prefix != 24 || hl.Peer != "10.0.0.102" || hl.Priority != 200 || hl.VRID != 7 ||
					hl.DrainTimeoutSeconds != 45 {
					t.Errorf("host load balancer = %+v", hl)
				}
				if len(hl.Listeners) != 2 || hl.Listeners[1].Certificate != "CERT" || hl.Listeners[1].Key != "KEY" || len(hl.Listeners[1].Rules) != 1 {
					t.Errorf("listeners = %+v", hl.Listeners)
				}
				if len(hl.Pools) != 1 || hl.Pools[0].Algorithm != api.AlgorithmRoundRobin || hl.Pools[0].HealthMonitor.Path != "/healthz" {
					t.Fatalf("pools = %+v", hl.Pools)
				}
				wantMembers := []api.HostLBMember{
					{Name: "uid-web-0", Instance: "web-0", Address: "10.0.0.2", Port: 8080, Weight: 1},
					{Name: "uid-web-1", Instance: "web-1", Address: "10.0.0.3", Port: 8080, Weight: 1, Draining: true},
				}
				if !slices.Equal(hl.Pools[0].Members, wantMembers) {
					t.Errorf("members = %+v, want %+v", hl.Pools[0].Members, wantMembers)
				}
			},
		},
		{
			name: "second LB host", snap: lbSnapshot(lbOn("h2", "h3")), host: "h3",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				hl := spec.LoadBalancers[0]
				if hl.Address != "10.0.0.102" || hl.Peer != "10.0.0.101" || hl.Priority != 150 {
					t.Errorf("host load balancer = %+v", hl)
				}
				if p := lbPortOf(spec.Networks[0]); p == nil || p.IP != "10.0.0.102" {
					t.Errorf("port = %+v", p)
				}
			},
		},
		{
			name: "instance host peers with the LB hosts", snap: lbSnapshot(lbOn("h2", "h3")), host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				if e := spec.Networks[0]; !slices.Equal(e.Peers, []string{"10.99.0.2", "10.99.0.3"}) || lbPortOf(e) != nil {
					t.Errorf("entry = %+v", e)
				}
				if len(spec.LoadBalancers) != 0 {
					t.Errorf("load balancers = %+v, want none", spec.LoadBalancers)
				}
			},
		},
		{
			name: "members open to the LB hosts on their port", snap: lbSnapshot(lbOn("h2", "h3")), host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				ps := spec.Networks[0].Ports
				if len(ps) != 1 {
					t.Fatalf("ports = %+v", ps)
				}
				want := api.FirewallRule{Protocol: "tcp", PortMin: 8080, PortMax: 8080, CIDRs: []string{"10.0.0.101/32", "10.0.0.102/32"}}
				if !slices.ContainsFunc(ps[0].Ingress, func(r api.FirewallRule) bool {
					return r.Protocol == want.Protocol && r.PortMin == want.PortMin && r.PortMax == want.PortMax && slices.Equal(r.CIDRs, want.CIDRs)
				}) {
					t.Errorf("member ingress %+v lacks %+v", ps[0].Ingress, want)
				}
			},
		},
		{
			name: "one LB host: no peer, no VRRP rule", snap: lbSnapshot(lbOn("h2")), host: "h2",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				hl := spec.LoadBalancers[0]
				if hl.Peer != "" {
					t.Errorf("peer = %q", hl.Peer)
				}
				if p := lbPortOf(spec.Networks[0]); p == nil || len(p.Ingress) != 2 {
					t.Errorf("port = %+v, want the two listener rules only", p)
				}
			},
		},
		{
			name: "LB host on the network even with an instance of its own", snap: lbSnapshot(lbOn("h1")), host: "h1",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				wantEntries(t, spec, 1)
				if ps := spec.Networks[0].Ports; len(ps) != 2 || ps[0].Name != "lb-web" || ps[1].Name != "web-0" {
					t.Errorf("ports = %+v, want the LB's and the instance's", ps)
				}
			},
		},
		{
			name: "not placed yet", snap: lbSnapshot(lbOn()), host: "h2",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				if len(spec.Networks) != 0 || len(spec.LoadBalancers) != 0 {
					t.Errorf("spec = %+v, want nothing", spec)
				}
			},
		},
		{
			name: "network of another UID (recreated)", snap: func() Snapshot {
				lb := lbOn("h2")
				lb.Status.NetworkUID = "uid-old"
				return lbSnapshot(lb)
			}(), host: "h2",
			check: func(t *testing.T, spec api.HostNetworkSpec) {
				if len(spec.Networks) != 0 || len(spec.LoadBalancers) != 0 {
					t.Errorf("spec = %+v, want nothing", spec)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, NewIndex(tt.snap).HostSpec(tt.host))
		})
	}
}

// Which hosts' specs a load balancer change touches: health alone none,
// a member change exactly the LB hosts, a placement the network's hosts.
func TestLoadBalancerChangesTouchTheLBHosts(t *testing.T) {
	specs := func(lb *api.LoadBalancer) map[string]api.HostNetworkSpec {
		x := NewIndex(lbSnapshot(lb))
		out := map[string]api.HostNetworkSpec{}
		for _, h := range x.Hosts() {
			out[h] = x.HostSpec(h)
		}
		return out
	}
	changed := func(a, b map[string]api.HostNetworkSpec) []string {
		var out []string
		for h := range a {
			if !SpecEqual(a[h], b[h]) {
				out = append(out, h)
			}
		}
		slices.Sort(out)
		return out
	}
	before := specs(lbOn("h2", "h3"))
	tests := []struct {
		name string
		edit func(*api.LoadBalancer)
		want []string
	}{
		{"health only", func(lb *api.LoadBalancer) {
			lb.Status.Members[0].Health = api.HealthDown
			lb.Status.Phase = api.LBDegraded
			lb.Status.Hosts[0].Active = true
		}, nil},
		{"member draining", func(lb *api.LoadBalancer) { lb.Status.Members[0].State = api.MemberDraining }, []string{"h2", "h3"}},
		{"listener added", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Protocol: api.ListenerTCP, Port: 8443, DefaultPool: "web"})
		}, []string{"h2", "h3"}},
		{"moved to another host", func(lb *api.LoadBalancer) { lb.Status.Hosts[1].Name = "h1" }, []string{"h1", "h2", "h3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb := lbOn("h2", "h3")
			tt.edit(lb)
			if got := changed(before, specs(lb)); !slices.Equal(got, tt.want) {
				t.Errorf("changed specs of %v, want %v", got, tt.want)
			}
		})
	}
}
