package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// lbDriver is the driver of a load balancer's port.
const lbDriver = "lb"

// defaultDrainSeconds is the drain timeout of a load balancer that sets
// none (as package loadbalancer).
const defaultDrainSeconds = 30

// indexLoadBalancers indexes the load balancers that are placed, with a
// VIP, on a network of the snapshot: their hosts become hosts of the
// network.
func (x *Index) indexLoadBalancers(lbs []*api.LoadBalancer) {
	for _, lb := range lbs {
		nk := key(lb.Metadata.Project, lb.Spec.Network)
		n := x.networks[nk]
		if n == nil || lb.Status.VIP == "" || len(lb.Status.Hosts) == 0 ||
			(lb.Status.NetworkUID != "" && lb.Status.NetworkUID != n.Metadata.UID) {
			continue
		}
		x.lbsOn[nk] = append(x.lbsOn[nk], lb)
		x.indexMemberIngress(lb)
		for _, h := range lb.Status.Hosts {
			if x.byHost[h.Name] == nil {
				x.byHost[h.Name] = map[string]bool{}
			}
			x.byHost[h.Name][nk] = true
			if !slices.Contains(x.lbsOf[h.Name], lb) {
				x.lbsOf[h.Name] = append(x.lbsOf[h.Name], lb)
			}
		}
	}
	byName := func(a, b *api.LoadBalancer) int {
		return strings.Compare(key(a.Metadata.Project, a.Metadata.Name), key(b.Metadata.Project, b.Metadata.Name))
	}
	for _, m := range []map[string][]*api.LoadBalancer{x.lbsOn, x.lbsOf} {
		for _, l := range m {
			slices.SortFunc(l, byName)
		}
	}
}

// memberKey is the key of lbIngress.
func memberKey(instanceUID, network string) string { return instanceUID + "/" + network }

// indexMemberIngress opens each member of lb, on the load balancer's
// network, to its LB hosts on the member's port: HAProxy connects and
// checks from the hosts' own addresses, whatever the members' security
// groups say (as a cloud's load balancer reaches its targets without a
// rule of the user's).
func (x *Index) indexMemberIngress(lb *api.LoadBalancer) {
	var from []string
	for _, h := range lb.Status.Hosts {
		if h.Address != "" {
			from = append(from, h.Address+"/32")
		}
	}
	if len(from) == 0 {
		return
	}
	slices.Sort(from)
	for _, m := range lb.Status.Members {
		if m.InstanceUID == "" || m.Port == 0 {
			continue
		}
		k := memberKey(m.InstanceUID, lb.Spec.Network)
		x.lbIngress[k] = append(x.lbIngress[k], api.FirewallRule{Protocol: "tcp", PortMin: m.Port, PortMax: m.Port, CIDRs: slices.Clone(from)})
	}
}

// lbEntries adds to e, the entry of network nk on host, the load
// balancers of the network: the port of each one host runs, and the
// other LB hosts as VXLAN peers.
func (x *Index) lbEntries(e *api.HostNetworkEntry, nk, host string) {
	for _, lb := range x.lbsOn[nk] {
		if lb.Status.VIP != "" {
			e.Records = append(e.Records, api.DNSRecord{Name: api.LoadBalancerDNSName(lb.Metadata.Name), IP: lb.Status.VIP})
		}
		for i, h := range lb.Status.Hosts {
			if h.Name != host {
				if addr := underlay(x.hosts[h.Name]); addr != "" {
					e.Peers = append(e.Peers, addr)
				}
				continue
			}
			e.Ports = append(e.Ports, lbPort(lb, i))
		}
	}
}

// peer returns the address of the other host of a load balancer on two
// hosts, or "".
func peer(lb *api.LoadBalancer, i int) string {
	for j, h := range lb.Status.Hosts {
		if j != i {
			return h.Address
		}
	}
	return ""
}

// lbPort is the port of a load balancer's i-th host: its own address,
// the VIP, the listeners open to anyone and everything open to the peer
// (VRRP).
func lbPort(lb *api.LoadBalancer, i int) api.HostPort {
	h := lb.Status.Hosts[i]
	p := api.HostPort{
		Instance: lb.Metadata.UID, Name: "lb-" + lb.Metadata.Name, MAC: macOf(h.Address), IP: h.Address,
		Driver: lbDriver, VIP: lb.Status.VIP, FloatingIP: lb.Status.FloatingIP,
	}
	for _, l := range lb.Spec.Listeners {
		p.Ingress = append(p.Ingress, api.FirewallRule{Protocol: "tcp", PortMin: l.Port, PortMax: l.Port, CIDRs: []string{"0.0.0.0/0"}})
	}
	if pa := peer(lb, i); pa != "" {
		p.Ingress = append(p.Ingress, api.FirewallRule{Protocol: "all", CIDRs: []string{pa + "/32"}})
	}
	p.Ingress = canonicalRules(p.Ingress)
	return p
}

// macOf derives a port's MAC from its IPv4 address as instance MACs are
// (package ipam): 0a:58 and the four address bytes.
func macOf(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return ""
	}
	b := a.As4()
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// hostLoadBalancers returns what host must run of the load balancers
// placed on it.
func (x *Index) hostLoadBalancers(host string) []api.HostLoadBalancer {
	var out []api.HostLoadBalancer
	for _, lb := range x.lbsOf[host] {
		n := x.networks[key(lb.Metadata.Project, lb.Spec.Network)]
		for i, h := range lb.Status.Hosts {
			if h.Name == host {
				out = append(out, hostLoadBalancer(lb, n, i))
			}
		}
	}
	return out
}

// hostLoadBalancer is load balancer lb on network n as its i-th host runs
// it.
func hostLoadBalancer(lb *api.LoadBalancer, n *api.Network, i int) api.HostLoadBalancer {
	h := lb.Status.Hosts[i]
	hl := api.HostLoadBalancer{
		UID: lb.Metadata.UID, Name: lb.Metadata.Name, Project: lb.Metadata.Project,
		NetworkUID: n.Metadata.UID, VIP: lb.Status.VIP, Address: h.Address,
		Peer: peer(lb, i), Priority: h.Priority, VRID: lb.Status.VRID,
		DrainTimeoutSeconds: lb.Spec.DrainTimeoutSeconds,
	}
	if hl.DrainTimeoutSeconds <= 0 {
		hl.DrainTimeoutSeconds = defaultDrainSeconds
	}
	if pfx, err := netip.ParsePrefix(n.Spec.CIDR); err == nil {
		hl.Prefix = pfx.Bits()
	}
	for _, l := range lb.Spec.Listeners {
		l.Rules = slices.Clone(l.Rules)
		hl.Listeners = append(hl.Listeners, l)
	}
	for _, p := range lb.Spec.Pools {
		hp := api.HostLBPool{Name: p.Name, Algorithm: p.Algorithm, HealthMonitor: p.HealthMonitor}
		if hp.Algorithm == "" {
			hp.Algorithm = api.AlgorithmRoundRobin
		}
		for _, m := range lb.Status.Members {
			if m.Pool != p.Name {
				continue
			}
			hp.Members = append(hp.Members, api.HostLBMember{
				Name: m.InstanceUID, Instance: m.Instance, Address: m.Address, Port: m.Port,
				Weight: m.Weight, Draining: m.State == api.MemberDraining,
			})
		}
		hl.Pools = append(hl.Pools, hp)
	}
	return hl
}
