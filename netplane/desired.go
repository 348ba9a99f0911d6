package netplane

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane/dnsmasq"
	"github.com/ouroboros-cloud/ouro/netplane/nft"
)

// Device and namespace names. Host devices owned by ouro match
// ourt<vni> (transit veth) and ourx<vni> (a VXLAN device between its
// creation and its move into the router namespace); everything inside
// ouro-n* and ouro-i* namespaces is ouro's.
const (
	routerNSPrefix   = "ouro-n"
	instanceNSPrefix = "ouro-i"
	transitPrefix    = "ourt"
	vxlanPrefix      = "ourx"
	portPrefix       = "ourp"
	bridgeName       = "br0"
	routerTransit    = "transit"
	vxlanPort        = 4789
	vxlanOverhead    = 50
	// lbDriver is the driver of a load balancer's port (api.HostPort).
	lbDriver = "lb"
)

// network is a validated HostNetworkEntry.
type network struct {
	uid     string
	name    string
	vni     int
	cidr    netip.Prefix
	gateway netip.Addr
	nat     bool
	// vpc identifies the VPC the network is a subnet of ("" for none);
	// siblings are the other subnets of that VPC on this host.
	vpc      string
	siblings []sibling
	dns      []netip.Addr
	peers    []netip.Addr
	records  []dnsmasq.Record
	ports    []port
	transitH netip.Prefix // host end of the transit /30
	transitR netip.Prefix // router end
}

// port is a validated HostPort.
type port struct {
	instance string
	name     string
	mac      net.HardwareAddr
	ip       netip.Addr
	fip      netip.Addr
	// vip is a load balancer port's virtual address (invalid for other
	// ports): admitted as a source of the port and matched as its
	// destination like ip, the target of the floating IP, and kept on
	// the inner device when keepalived has put it there.
	vip netip.Addr
	// lb says the port is a load balancer's ("lb" driver): instance is
	// the load balancer's UID, and its floating IP is announced only
	// while the VIP is on this host (Plane.SetLBActive).
	lb       bool
	ingress  []nft.Rule
	egress   []nft.Rule
	restrict bool
	// ifname is the device inside the instance namespace: eth0 for the
	// instance's first network in the spec, eth1 for its second, ...
	ifname string
	// dev is the device on the router's bridge: a veth end, or the TAP a
	// virtual machine attaches to.
	dev string
	// tap says the port is a TAP device for a virtual machine (no
	// instance namespace, no inner end).
	tap bool
}

func routerNSName(vni int) string      { return fmt.Sprintf("%s%d", routerNSPrefix, vni) }
func transitName(vni int) string       { return fmt.Sprintf("%s%d", transitPrefix, vni) }
func vxlanName(vni int) string         { return fmt.Sprintf("%s%d", vxlanPrefix, vni) }
func instanceNSName(uid string) string { return instanceNSPrefix + shortID(uid, 12) }

// InstanceNetNSName is the name of an instance's network namespace in a
// plane's NetNSDir (NetNSPath joins the two).
func InstanceNetNSName(uid string) string { return instanceNSName(uid) }
func portDevName(uid string) string       { return portPrefix + shortID(uid, 11) }

// shortID keeps the first n letters and digits of a UID, lower-cased.
func shortID(uid string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(uid) {
		if b.Len() == n {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// GatewayMAC is the gateway MAC of a network, the same on every host:
// 0e:00:00 (locally administered, unicast; instance MACs are 0a:58:...)
// followed by the 24-bit VNI.
func GatewayMAC(vni int) net.HardwareAddr {
	return net.HardwareAddr{0x0e, 0x00, 0x00, byte(vni >> 16), byte(vni >> 8), byte(vni)}
}

// TransitPrefixes returns the host and router ends of a network's transit
// link: the /30 number (VNI mod 2^20) of 100.64.0.0/10, .1 on the host and
// .2 in the router namespace. It depends only on the VNI, so it survives
// restarts; VNIs 2^20 apart would share it, which a cluster reaches only
// past a million networks.
func TransitPrefixes(vni int) (host, router netip.Prefix) {
	base := uint32(100)<<24 | uint32(64)<<16 + uint32(vni&0xFFFFF)*4
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], base+1)
	host = netip.PrefixFrom(netip.AddrFrom4(b), 30)
	binary.BigEndian.PutUint32(b[:], base+2)
	router = netip.PrefixFrom(netip.AddrFrom4(b), 30)
	return host, router
}

// parseSpec validates a spec and names every device.
func parseSpec(spec api.HostNetworkSpec, hostResolvers func() []netip.Addr) ([]network, error) {
	var nets []network
	seenVNI := map[int]bool{}
	ifCount := map[string]int{} // instance UID → interfaces so far
	for i, e := range spec.Networks {
		n, err := parseEntry(e, hostResolvers)
		if err != nil {
			return nil, fmt.Errorf("networks[%d] (%s): %w", i, e.Name, err)
		}
		if seenVNI[n.vni] {
			return nil, fmt.Errorf("networks[%d] (%s): duplicate vni %d", i, e.Name, n.vni)
		}
		seenVNI[n.vni] = true
		seenInst := map[string]bool{}
		for j := range n.ports {
			p := &n.ports[j]
			if seenInst[p.instance] {
				return nil, fmt.Errorf("networks[%d] (%s): instance %s has two ports", i, e.Name, p.instance)
			}
			seenInst[p.instance] = true
			p.ifname = fmt.Sprintf("eth%d", ifCount[p.instance])
			ifCount[p.instance]++
		}
		nets = append(nets, n)
	}
	if err := linkSiblings(nets); err != nil {
		return nil, err
	}
	return nets, nil
}

func parseEntry(e api.HostNetworkEntry, hostResolvers func() []netip.Addr) (network, error) {
	n := network{uid: e.UID, name: e.Name, vni: e.VNI, nat: e.NAT, vpc: e.VPC}
	if e.VNI < 1 || e.VNI > 1<<24-1 {
		return n, fmt.Errorf("vni %d out of range", e.VNI)
	}
	var err error
	if n.cidr, err = netip.ParsePrefix(e.CIDR); err != nil || !n.cidr.Addr().Is4() || n.cidr.Bits() > 30 {
		return n, fmt.Errorf("cidr %q: not an IPv4 prefix of /30 or larger", e.CIDR)
	}
	n.cidr = n.cidr.Masked()
	if n.gateway, err = netip.ParseAddr(e.Gateway); err != nil || !n.cidr.Contains(n.gateway) {
		return n, fmt.Errorf("gateway %q: not an address in %s", e.Gateway, n.cidr)
	}
	for _, s := range e.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return n, fmt.Errorf("dns %q: not an IPv4 address", s)
		}
		n.dns = append(n.dns, a)
	}
	if len(n.dns) == 0 {
		n.dns = hostResolvers()
	}
	for _, s := range e.Peers {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return n, fmt.Errorf("peer %q: not an IPv4 address", s)
		}
		n.peers = append(n.peers, a)
	}
	for _, r := range e.Records {
		a, err := netip.ParseAddr(r.IP)
		if err != nil || !a.Is4() {
			return n, fmt.Errorf("record %q: address %q: not IPv4", r.Name, r.IP)
		}
		n.records = append(n.records, dnsmasq.Record{Name: r.Name, IP: a})
	}
	seenDev := map[string]bool{}
	seenAddr := map[netip.Addr]string{} // port IPs and VIPs → port name
	for _, hp := range e.Ports {
		p, err := parsePort(hp, n.cidr)
		if err != nil {
			return n, fmt.Errorf("port %s (%s): %w", hp.Name, hp.Instance, err)
		}
		if seenDev[p.dev] {
			return n, fmt.Errorf("port %s: instance UID prefix %s is not unique", hp.Name, p.dev)
		}
		seenDev[p.dev] = true
		if p.vip == n.gateway {
			return n, fmt.Errorf("port %s: vip %s is the gateway", hp.Name, p.vip)
		}
		// The rules key ports by address: two ports may not share one.
		for _, a := range []netip.Addr{p.ip, p.vip} {
			if !a.IsValid() {
				continue
			}
			if other, ok := seenAddr[a]; ok {
				return n, fmt.Errorf("port %s: address %s is also port %s's", hp.Name, a, other)
			}
			seenAddr[a] = hp.Name
		}
		n.ports = append(n.ports, p)
	}
	n.transitH, n.transitR = TransitPrefixes(n.vni)
	return n, nil
}

func parsePort(hp api.HostPort, cidr netip.Prefix) (port, error) {
	p := port{
		instance: hp.Instance, name: hp.Name, restrict: hp.EgressRestricted,
		tap: hp.Driver == api.DriverVM, lb: hp.Driver == lbDriver,
	}
	if len(shortID(hp.Instance, 12)) < 8 {
		return p, fmt.Errorf("instance UID %q too short", hp.Instance)
	}
	p.dev = portDevName(hp.Instance)
	var err error
	if p.mac, err = net.ParseMAC(hp.MAC); err != nil || len(p.mac) != 6 || p.mac[0]&1 != 0 {
		return p, fmt.Errorf("mac %q: not a unicast Ethernet address", hp.MAC)
	}
	if p.ip, err = netip.ParseAddr(hp.IP); err != nil || !cidr.Contains(p.ip) {
		return p, fmt.Errorf("ip %q: not an address in %s", hp.IP, cidr)
	}
	// A VIP is a load balancer's only: on any other port it is ignored,
	// so that no instance is allowed a second source address.
	if p.lb && hp.VIP != "" {
		if p.vip, err = netip.ParseAddr(hp.VIP); err != nil || !cidr.Contains(p.vip) || p.vip == p.ip {
			return p, fmt.Errorf("vip %q: not an address in %s other than the port's", hp.VIP, cidr)
		}
	}
	if hp.FloatingIP != "" {
		if p.fip, err = netip.ParseAddr(hp.FloatingIP); err != nil || !p.fip.Is4() {
			return p, fmt.Errorf("floating IP %q: not an IPv4 address", hp.FloatingIP)
		}
	}
	if p.ingress, err = parseRules(hp.Ingress); err != nil {
		return p, fmt.Errorf("ingress: %w", err)
	}
	if p.egress, err = parseRules(hp.Egress); err != nil {
		return p, fmt.Errorf("egress: %w", err)
	}
	return p, nil
}

func parseRules(in []api.FirewallRule) ([]nft.Rule, error) {
	var out []nft.Rule
	for i, r := range in {
		switch r.Protocol {
		case "tcp", "udp":
			if r.PortMin != 0 || r.PortMax != 0 {
				hi := r.PortMax
				if hi == 0 {
					hi = r.PortMin
				}
				if r.PortMin < 1 || hi > 65535 || hi < r.PortMin {
					return nil, fmt.Errorf("rule %d: bad port range %d-%d", i, r.PortMin, r.PortMax)
				}
			}
		case "icmp", "all":
		default:
			return nil, fmt.Errorf("rule %d: unknown protocol %q", i, r.Protocol)
		}
		rule := nft.Rule{Protocol: r.Protocol, PortMin: r.PortMin, PortMax: r.PortMax}
		for _, c := range r.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				// A bare address is a /32.
				a, aerr := netip.ParseAddr(c)
				if aerr != nil {
					return nil, fmt.Errorf("rule %d: cidr %q: %w", i, c, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if !p.Addr().Is4() {
				continue // IPv4 only for now
			}
			rule.CIDRs = append(rule.CIDRs, p)
		}
		out = append(out, rule)
	}
	return out, nil
}

// ResolvConfServers returns the IPv4 nameservers of a resolv.conf file,
// without loopback ones (they would point into the host namespace, which
// the router namespace cannot reach).
func ResolvConfServers(path string) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil || !a.Is4() || a.IsLoopback() {
			continue
		}
		out = append(out, a)
	}
	return out
}
