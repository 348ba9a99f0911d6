package network

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// Snapshot is the state the controller computes from: every object of the
// kinds a host network is made of.
type Snapshot struct {
	Hosts       []*api.Host
	Networks    []*api.Network
	Groups      []*api.SecurityGroup
	FloatingIPs []*api.FloatingIP
	Instances   []*api.Instance
	// LoadBalancers are placed on hosts by their controller (status.hosts).
	LoadBalancers []*api.LoadBalancer
}

// Index answers the controller's questions about one Snapshot. It is
// built once per batch of changes and then shared by every host's
// computation; it is read-only after NewIndex.
type Index struct {
	hosts    map[string]*api.Host
	networks map[string]*api.Network // project/name
	groups   map[string]*api.SecurityGroup
	// live are the instances that are not terminated, sorted by project
	// and name.
	live []*api.Instance
	// onNetwork lists the live instances with an interface on a network
	// (by network key).
	onNetwork map[string][]*api.Instance
	// members maps project/group to the addresses (/32) of the live
	// instances attached with that group.
	members map[string][]string
	// fipOf maps project/instance to the associated floating IP.
	fipOf map[string]*api.FloatingIP
	// byHost maps a host to the networks (keys) of its live instances and
	// load balancers.
	byHost map[string]map[string]bool
	// lbsOn maps a network key to the placed load balancers on it, and
	// lbsOf a host to those it runs, both sorted by project and name.
	lbsOn map[string][]*api.LoadBalancer
	lbsOf map[string][]*api.LoadBalancer
	// lbIngress maps a member instance's UID and network name to what its
	// load balancers need to reach it: the pool's port from the LB hosts.
	lbIngress map[string][]api.FirewallRule
	// presentOn maps a network key to the hosts whose spec has it: those
	// with its instances or load balancers and, for a VPC's subnet, those
	// with a port in another subnet of the VPC (they route into it).
	presentOn map[string]map[string]bool
}

func key(project, name string) string { return project + "/" + name }

// terminated reports whether an instance no longer needs a network.
func terminated(in *api.Instance) bool { return in.Status.Phase == api.PhaseTerminated }

// NewIndex indexes a snapshot. The snapshot's objects are not modified.
func NewIndex(s Snapshot) *Index {
	x := &Index{
		hosts:     map[string]*api.Host{},
		networks:  map[string]*api.Network{},
		groups:    map[string]*api.SecurityGroup{},
		onNetwork: map[string][]*api.Instance{},
		members:   map[string][]string{},
		fipOf:     map[string]*api.FloatingIP{},
		byHost:    map[string]map[string]bool{},
		lbsOn:     map[string][]*api.LoadBalancer{},
		lbsOf:     map[string][]*api.LoadBalancer{},
		lbIngress: map[string][]api.FirewallRule{},
	}
	for _, h := range s.Hosts {
		x.hosts[h.Metadata.Name] = h
	}
	for _, n := range s.Networks {
		x.networks[key(n.Metadata.Project, n.Metadata.Name)] = n
	}
	for _, g := range s.Groups {
		x.groups[key(g.Metadata.Project, g.Metadata.Name)] = g
	}
	for _, in := range s.Instances {
		if !terminated(in) {
			x.live = append(x.live, in)
		}
	}
	slices.SortFunc(x.live, func(a, b *api.Instance) int {
		return strings.Compare(key(a.Metadata.Project, a.Metadata.Name), key(b.Metadata.Project, b.Metadata.Name))
	})
	for _, in := range x.live {
		p := in.Metadata.Project
		var ips []string
		for _, ifc := range in.Status.Interfaces {
			if ifc.IP == "" {
				continue
			}
			ips = append(ips, ifc.IP+"/32")
			nk := key(p, ifc.Network)
			x.onNetwork[nk] = append(x.onNetwork[nk], in)
			if h := in.Status.Host; h != "" {
				if x.byHost[h] == nil {
					x.byHost[h] = map[string]bool{}
				}
				x.byHost[h][nk] = true
			}
		}
		for _, a := range in.Spec.Networks {
			for _, g := range a.SecurityGroups {
				gk := key(p, g)
				x.members[gk] = append(x.members[gk], ips...)
			}
		}
	}
	for gk, cidrs := range x.members {
		slices.Sort(cidrs)
		x.members[gk] = slices.Compact(cidrs)
	}
	for _, f := range s.FloatingIPs {
		if f.Spec.Instance != "" && f.Status.Address != "" {
			x.fipOf[key(f.Metadata.Project, f.Spec.Instance)] = f
		}
	}
	x.indexLoadBalancers(s.LoadBalancers)
	x.addVPCSubnets()
	return x
}

// vpcKey is the identity of a network's VPC in host specs: project/name,
// or "" for a network in none.
func vpcKey(n *api.Network) string {
	if n.Spec.VPC == "" {
		return ""
	}
	return key(n.Metadata.Project, n.Spec.VPC)
}

// addVPCSubnets gives every host with a port in a VPC's subnet every
// other subnet of the VPC that has a port anywhere: the host routes from
// its subnets into theirs, on the bridges of their own router namespaces
// (docs/networking.md, "VPCs"). It then records where each network is.
func (x *Index) addVPCSubnets() {
	used := map[string]bool{} // networks with a port on some host
	for _, nets := range x.byHost {
		for nk := range nets {
			used[nk] = true
		}
	}
	subnets := map[string][]string{} // VPC key → used subnets' keys
	for nk := range used {
		if n := x.networks[nk]; n != nil && vpcKey(n) != "" {
			subnets[vpcKey(n)] = append(subnets[vpcKey(n)], nk)
		}
	}
	x.presentOn = map[string]map[string]bool{}
	for h, nets := range x.byHost {
		var add []string
		for nk := range nets {
			if n := x.networks[nk]; n != nil && vpcKey(n) != "" {
				add = append(add, subnets[vpcKey(n)]...)
			}
		}
		for _, nk := range add {
			nets[nk] = true
		}
		for nk := range nets {
			if x.presentOn[nk] == nil {
				x.presentOn[nk] = map[string]bool{}
			}
			x.presentOn[nk][h] = true
		}
	}
}

// Hosts returns the names of the hosts of the snapshot.
func (x *Index) Hosts() []string {
	out := make([]string, 0, len(x.hosts))
	for n := range x.hosts {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// HasHost reports whether the snapshot has a host of that name.
func (x *Index) HasHost(name string) bool { return x.hosts[name] != nil }

// HostSpec computes what host must realise: an entry per network with at
// least one live instance or load balancer placed on host, and the load
// balancers it runs.
func (x *Index) HostSpec(host string) api.HostNetworkSpec {
	var spec api.HostNetworkSpec
	for nk := range x.byHost[host] {
		if n := x.networks[nk]; n != nil {
			spec.Networks = append(spec.Networks, x.entry(n, x.onNetwork[nk], host))
		}
	}
	slices.SortFunc(spec.Networks, func(a, b api.HostNetworkEntry) int {
		return strings.Compare(key(a.Project, a.Name), key(b.Project, b.Name))
	})
	spec.LoadBalancers = x.hostLoadBalancers(host)
	return spec
}

// entry computes one network as host sees it; insts are the live
// instances on the network, sorted.
func (x *Index) entry(n *api.Network, insts []*api.Instance, host string) api.HostNetworkEntry {
	e := api.HostNetworkEntry{
		UID: n.Metadata.UID, Name: n.Metadata.Name, Project: n.Metadata.Project,
		VNI: n.Status.VNI, CIDR: n.Spec.CIDR, Gateway: n.Spec.Gateway,
		DNS: slices.Clone(n.Spec.DNS), NAT: n.NATEnabled(), VPC: vpcKey(n),
	}
	for _, in := range insts {
		for i, ifc := range in.Status.Interfaces {
			if ifc.Network != n.Metadata.Name || ifc.IP == "" {
				continue
			}
			e.Records = append(e.Records, api.DNSRecord{Name: in.Metadata.Name, IP: ifc.IP})
			h := in.Status.Host
			switch {
			case h == "":
			case h != host:
				if addr := underlay(x.hosts[h]); addr != "" {
					e.Peers = append(e.Peers, addr)
				}
			default:
				e.Ports = append(e.Ports, x.port(in, i, ifc))
			}
		}
	}
	x.lbEntries(&e, key(n.Metadata.Project, n.Metadata.Name), host)
	if e.VPC != "" {
		// Hosts that route into the subnet without a port on it: its
		// broadcasts (ARP) reach their routers too.
		for h := range x.presentOn[key(n.Metadata.Project, n.Metadata.Name)] {
			if addr := underlay(x.hosts[h]); h != host && addr != "" {
				e.Peers = append(e.Peers, addr)
			}
		}
	}
	slices.Sort(e.Peers)
	e.Peers = slices.Compact(e.Peers)
	slices.SortFunc(e.Records, func(a, b api.DNSRecord) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.IP, b.IP)
	})
	slices.SortFunc(e.Ports, func(a, b api.HostPort) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Instance, b.Instance)
	})
	return e
}

// underlay returns a host's underlay address, or "" for an unknown host.
func underlay(h *api.Host) string {
	if h == nil {
		return ""
	}
	return h.Status.Address
}

// port computes the port of interface i of an instance on this host.
func (x *Index) port(in *api.Instance, i int, ifc api.Interface) api.HostPort {
	p := api.HostPort{Instance: in.Metadata.UID, Name: in.Metadata.Name, MAC: ifc.MAC, IP: ifc.IP, Driver: in.Status.Driver}
	if f := x.fipOf[key(in.Metadata.Project, in.Metadata.Name)]; f != nil && i == 0 {
		p.FloatingIP = f.Status.Address
	}
	var groups []string
	for _, a := range in.Spec.Networks {
		if a.Network == ifc.Network {
			groups = a.SecurityGroups
		}
	}
	for _, g := range groups {
		sg := x.groups[key(in.Metadata.Project, g)]
		if sg == nil {
			continue
		}
		for _, r := range sg.Spec.Rules {
			fr := api.FirewallRule{Protocol: r.Protocol, PortMin: r.PortMin, PortMax: r.PortMax, CIDRs: []string{}}
			if r.CIDR != "" {
				fr.CIDRs = append(fr.CIDRs, r.CIDR)
			} else {
				fr.CIDRs = append(fr.CIDRs, x.members[key(in.Metadata.Project, r.SourceGroup)]...)
			}
			if r.Direction == "egress" {
				p.EgressRestricted = true
				p.Egress = append(p.Egress, fr)
			} else {
				p.Ingress = append(p.Ingress, fr)
			}
		}
	}
	p.Ingress = append(p.Ingress, x.lbIngress[memberKey(in.Metadata.UID, ifc.Network)]...)
	p.Ingress, p.Egress = canonicalRules(p.Ingress), canonicalRules(p.Egress)
	return p
}

// canonicalRules sorts rules and drops duplicates (the same rule in two
// groups).
func canonicalRules(rules []api.FirewallRule) []api.FirewallRule {
	if len(rules) == 0 {
		return nil
	}
	keyOf := func(r api.FirewallRule) string {
		b, _ := json.Marshal(r)
		return string(b)
	}
	slices.SortFunc(rules, func(a, b api.FirewallRule) int { return strings.Compare(keyOf(a), keyOf(b)) })
	return slices.CompactFunc(rules, func(a, b api.FirewallRule) bool { return keyOf(a) == keyOf(b) })
}

// FloatingIPStatus computes where a floating IP's traffic goes now: the
// first interface of its instance, on the instance's host. Both are empty
// while the instance is missing, terminated, unplaced or without address.
func (x *Index) FloatingIPStatus(f *api.FloatingIP) api.FloatingIPStatus {
	st := api.FloatingIPStatus{Address: f.Status.Address}
	if f.Spec.Instance == "" {
		return st
	}
	i, ok := slices.BinarySearchFunc(x.live, key(f.Metadata.Project, f.Spec.Instance), func(in *api.Instance, k string) int {
		return strings.Compare(key(in.Metadata.Project, in.Metadata.Name), k)
	})
	if !ok {
		return st
	}
	in := x.live[i]
	if in.Status.Host == "" || len(in.Status.Interfaces) == 0 {
		return st
	}
	st.Host, st.InstanceIP = in.Status.Host, in.Status.Interfaces[0].IP
	return st
}

// SpecEqual reports whether two host network specs are the same, by
// their canonical JSON.
func SpecEqual(a, b api.HostNetworkSpec) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
