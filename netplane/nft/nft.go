// Package nft renders the nftables rulesets of ouro's network plane and
// loads them with the nft program.
//
// Every table is replaced atomically with the idiom
//
//	table X {}        # create it if missing, so that the delete cannot fail
//	delete table X
//	table X { ... }   # the whole desired content
//
// fed to `nft -f -`, which runs the file as one transaction: a reader never
// sees a half-loaded table, and tables ouro does not own are never touched.
// Rendering is pure (tested without root); all values come from parsed
// addresses and generated device names, never from user text.
package nft

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/metadata"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// Table names owned by ouro.
const (
	// RouterNAT is the NAT table of a router namespace.
	RouterNAT = "ip ouro"
	// RouterFilter holds the stateful security groups of a router
	// namespace (routed and, through br_netfilter, bridged traffic).
	RouterFilter = "inet ouro-sg"
	// RouterBridge holds the stateless anti-spoofing and VXLAN hygiene
	// rules of a router namespace's bridge.
	RouterBridge = "bridge ouro-sg"
	// Host is the table in the host namespace.
	Host = "ip ouro-host"
)

// TransitRange is the carrier-grade NAT range the transit links use.
const TransitRange = "100.64.0.0/10"

// MetadataAddress is the instance metadata service's address, local to
// every router namespace; only the router's bridge may reach it.
const MetadataAddress = metadata.Address

// Router is what the rulesets of one router namespace are made of.
type Router struct {
	CIDR       netip.Prefix
	Gateway    netip.Addr
	GatewayMAC net.HardwareAddr
	NAT        bool
	// Bridge, VXLAN and Transit name the router namespace's devices.
	Bridge  string
	VXLAN   string
	Transit string
	Ports   []Port
	// Siblings are the prefixes of the other subnets of the network's VPC
	// on this host, routed to through legs onto their bridges.
	Siblings []netip.Prefix
}

// Port is one instance interface as the router sees it.
type Port struct {
	// Device is the veth end attached to the bridge.
	Device     string
	MAC        net.HardwareAddr
	IP         netip.Addr
	FloatingIP netip.Addr // invalid when none
	// VIP is a load balancer port's virtual address (invalid when none):
	// admitted as a source from the port and matched as its destination
	// like IP; its floating IP is DNATed to it, and its traffic to the
	// outside leaves with the floating IP as source.
	VIP     netip.Addr
	Ingress []Rule
	Egress  []Rule
	// EgressRestricted allows only Egress rules out.
	EgressRestricted bool
}

// addrs returns the port's addresses: IP, and the VIP when it has one.
func (p Port) addrs() []netip.Addr {
	if p.VIP.IsValid() {
		return []netip.Addr{p.IP, p.VIP}
	}
	return []netip.Addr{p.IP}
}

// Rule allows traffic of one protocol (tcp, udp, icmp or all), optionally
// to a destination port range, from or to a set of prefixes.
type Rule struct {
	Protocol string
	PortMin  int
	PortMax  int
	CIDRs    []netip.Prefix
}

var ifname = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,15}$`)

// checkNames refuses device names that could not be quoted safely.
func checkNames(names ...string) error {
	for _, n := range names {
		if !ifname.MatchString(n) {
			return fmt.Errorf("invalid interface name %q", n)
		}
	}
	return nil
}

// replace wraps a table body in the atomic replace idiom.
func replace(table, body string) string {
	return fmt.Sprintf("table %s {}\ndelete table %s\ntable %s {\n%s}\n", table, table, table, body)
}

// Delete returns the statements that remove a table if it exists.
func Delete(table string) string {
	return fmt.Sprintf("table %s {}\ndelete table %s\n", table, table)
}

// RouterRuleset renders the three tables of a router namespace.
func RouterRuleset(r Router) (string, error) {
	if err := checkNames(r.Bridge, r.VXLAN, r.Transit); err != nil {
		return "", err
	}
	ports := slices.Clone(r.Ports)
	slices.SortFunc(ports, func(a, b Port) int { return cmp.Compare(a.Device, b.Device) })
	for _, p := range ports {
		if err := checkNames(p.Device); err != nil {
			return "", err
		}
		if !p.IP.Is4() || len(p.MAC) != 6 {
			return "", fmt.Errorf("port %s: need an IPv4 address and a MAC", p.Device)
		}
		if p.VIP.IsValid() && (!p.VIP.Is4() || p.VIP == p.IP) {
			return "", fmt.Errorf("port %s: VIP %s: need an IPv4 address other than the port's", p.Device, p.VIP)
		}
	}
	var b strings.Builder
	b.WriteString(replace(RouterNAT, natBody(r, ports)))
	b.WriteString(replace(RouterFilter, filterBody(r, ports)))
	b.WriteString(replace(RouterBridge, bridgeBody(r, ports)))
	return b.String(), nil
}

func natBody(r Router, ports []Port) string {
	var pre, post, fwd strings.Builder
	for _, p := range ports {
		if !p.FloatingIP.IsValid() {
			continue
		}
		// A load balancer's floating IP leads to its VIP, wherever that
		// is; its own address is masqueraded like any other.
		target := p.IP
		if p.VIP.IsValid() {
			target = p.VIP
		}
		fmt.Fprintf(&pre, "\t\tip daddr %s dnat to %s\n", p.FloatingIP, target)
		fmt.Fprintf(&post, "\t\toifname %q ip saddr %s snat to %s\n", r.Transit, target, p.FloatingIP)
		if !r.NAT {
			// A floating IP is one-to-one NAT the user asked for: its
			// instance reaches the outside even on a network without
			// masquerade.
			fmt.Fprintf(&fwd, "\t\toifname %q ip saddr %s accept\n", r.Transit, target)
		}
	}
	if r.NAT {
		fmt.Fprintf(&post, "\t\toifname %q ip saddr %s masquerade\n", r.Transit, r.CIDR)
	} else {
		fmt.Fprintf(&fwd, "\t\toifname %q ct state established,related accept\n", r.Transit)
		fmt.Fprintf(&fwd, "\t\toifname %q ip saddr %s drop\n", r.Transit, r.CIDR)
	}
	var b strings.Builder
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	b.WriteString(pre.String())
	b.WriteString("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	b.WriteString(post.String())
	b.WriteString("\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	b.WriteString(fwd.String())
	b.WriteString("\t}\n")
	return b.String()
}

func filterBody(r Router, ports []Port) string {
	var b strings.Builder
	// Traffic to the router itself: DHCP (from 0.0.0.0), DNS, ping and
	// the metadata service from the network; nothing else from the
	// instances, and the metadata service from nowhere else.
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip daddr %s iifname != %q drop\n", MetadataAddress, r.Bridge)
	fmt.Fprintf(&b, "\t\tct state established,related accept\n")
	fmt.Fprintf(&b, "\t\tiifname %q ip saddr %s accept\n", r.Bridge, r.CIDR)
	fmt.Fprintf(&b, "\t\tiifname %q udp dport 67 accept\n", r.Bridge)
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", r.Bridge)

	var egress, ingress []string
	for _, p := range ports {
		for _, a := range p.addrs() {
			ingress = append(ingress, fmt.Sprintf("%s : jump in-%s", a, p.Device))
			if p.EgressRestricted {
				egress = append(egress, fmt.Sprintf("%s : jump out-%s", a, p.Device))
			}
		}
	}
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tct state established,related accept\n")
	if sib := Normalize(r.Siblings); len(sib) > 0 {
		// Traffic between subnets of a VPC is routed on the sender's
		// host, so a bridge that only carries it across (from a leg to
		// the VXLAN, or back) sees one direction of the connection: its
		// conntrack cannot judge it, and the source's egress and the
		// destination's ingress rules are applied where those ports are.
		parts := make([]string, len(sib))
		for i, c := range sib {
			parts[i] = c.String()
		}
		var local []string
		for _, p := range ports {
			for _, a := range p.addrs() {
				local = append(local, a.String())
			}
		}
		if len(local) > 0 {
			fmt.Fprintf(&b, "\t\tip saddr { %s } ip daddr != { %s } accept\n", strings.Join(parts, ", "), strings.Join(local, ", "))
		} else {
			fmt.Fprintf(&b, "\t\tip saddr { %s } accept\n", strings.Join(parts, ", "))
		}
	}
	fmt.Fprintf(&b, "\t\tct state invalid drop\n")
	if len(egress) > 0 {
		fmt.Fprintf(&b, "\t\tip saddr vmap { %s }\n", strings.Join(egress, ", "))
	}
	if len(ingress) > 0 {
		fmt.Fprintf(&b, "\t\tip daddr vmap { %s }\n", strings.Join(ingress, ", "))
	}
	b.WriteString("\t}\n")
	for _, p := range ports {
		fmt.Fprintf(&b, "\tchain in-%s {\n", p.Device)
		for _, rule := range p.Ingress {
			if m := ruleMatch("saddr", rule); m != "" {
				fmt.Fprintf(&b, "\t\t%s accept\n", m)
			}
		}
		b.WriteString("\t\tdrop\n\t}\n")
		if p.EgressRestricted {
			fmt.Fprintf(&b, "\tchain out-%s {\n", p.Device)
			for _, rule := range p.Egress {
				if m := ruleMatch("daddr", rule); m != "" {
					// return: the destination's ingress still applies.
					fmt.Fprintf(&b, "\t\t%s return\n", m)
				}
			}
			b.WriteString("\t\tdrop\n\t}\n")
		}
	}
	return b.String()
}

// ruleMatch renders the match of one rule, or "" when it matches nothing
// (no remote prefixes, or an unknown protocol).
func ruleMatch(dir string, r Rule) string {
	cidrs := Normalize(r.CIDRs)
	if len(cidrs) == 0 {
		return ""
	}
	parts := make([]string, len(cidrs))
	for i, c := range cidrs {
		parts[i] = c.String()
	}
	m := fmt.Sprintf("ip %s { %s }", dir, strings.Join(parts, ", "))
	switch r.Protocol {
	case "all":
		return m
	case "icmp":
		return m + " meta l4proto icmp"
	case "tcp", "udp":
		lo, hi := r.PortMin, r.PortMax
		if hi == 0 {
			hi = lo
		}
		if lo <= 0 || lo > 65535 || hi < lo || hi > 65535 {
			return m + " meta l4proto " + r.Protocol
		}
		if lo == hi {
			return fmt.Sprintf("%s %s dport %d", m, r.Protocol, lo)
		}
		return fmt.Sprintf("%s %s dport %d-%d", m, r.Protocol, lo, hi)
	}
	return ""
}

// Normalize returns the IPv4 prefixes masked, deduplicated, without those
// covered by another, sorted: an anonymous nft interval set refuses
// overlapping elements.
func Normalize(in []netip.Prefix) []netip.Prefix {
	var ps []netip.Prefix
	for _, p := range in {
		if p.IsValid() && p.Addr().Is4() {
			ps = append(ps, p.Masked())
		}
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(a.Bits(), b.Bits()), a.Addr().Compare(b.Addr()))
	})
	var out []netip.Prefix
	for _, p := range ps {
		covered := false
		for _, q := range out {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

func bridgeBody(r Router, ports []Port) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n")
	// Another host's gateway has the same MAC and IP: never let it be
	// learnt or answered across the VXLAN.
	fmt.Fprintf(&b, "\t\tiifname %q ether saddr %s drop\n", r.VXLAN, r.GatewayMAC)
	fmt.Fprintf(&b, "\t\tiifname %q arp saddr ip %s drop\n", r.VXLAN, r.Gateway)
	fmt.Fprintf(&b, "\t\tiifname %q arp daddr ip %s drop\n", r.VXLAN, r.Gateway)
	for _, p := range ports {
		fmt.Fprintf(&b, "\t\tiifname %q jump spoof-%s\n", p.Device, p.Device)
	}
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype filter hook postrouting priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\toifname %q ether saddr %s drop\n", r.VXLAN, r.GatewayMAC)
	fmt.Fprintf(&b, "\t\toifname %q udp dport 67 drop\n", r.VXLAN)
	b.WriteString("\t}\n")
	for _, p := range ports {
		fmt.Fprintf(&b, "\tchain spoof-%s {\n", p.Device)
		fmt.Fprintf(&b, "\t\tether saddr != %s drop\n", p.MAC)
		fmt.Fprintf(&b, "\t\tether type != { ip, arp } drop\n")
		// A load balancer's VIP too: keepalived sends gratuitous ARP
		// for it from the port's MAC, and HAProxy answers from it.
		srcs := "0.0.0.0"
		for _, a := range p.addrs() {
			srcs += ", " + a.String()
		}
		fmt.Fprintf(&b, "\t\tether type ip ip saddr != { %s } drop\n", srcs)
		fmt.Fprintf(&b, "\t\tether type arp arp saddr ether != %s drop\n", p.MAC)
		fmt.Fprintf(&b, "\t\tether type arp arp saddr ip != { %s } drop\n", srcs)
		b.WriteString("\t}\n")
	}
	return b.String()
}

// HostRuleset renders the host namespace's table: masquerade of the
// transit range to the underlay and forwarding between the transits
// (devices matching transitGlob, e.g. "ourt*") and the underlay.
func HostRuleset(underlay, transitGlob string, openPorts []uint16) (string, error) {
	if err := checkNames(underlay); err != nil {
		return "", err
	}
	if !regexp.MustCompile(`^[A-Za-z0-9]+\*?$`).MatchString(transitGlob) {
		return "", fmt.Errorf("invalid transit pattern %q", transitGlob)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\toifname %q ip saddr %s masquerade\n\t}\n", underlay, TransitRange)
	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q oifname %q accept\n", transitGlob, underlay)
	fmt.Fprintf(&b, "\t\tiifname %q oifname %q accept\n\t}\n", underlay, transitGlob)
	// Instances reach nothing on the host itself (the agent's endpoint,
	// sshd, whatever else listens) but answers to what the host opened
	// and the ports given: the API server's, when one runs here, so that
	// instances reach the cloud's API the same wherever it runs.
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q ct state established,related accept\n", transitGlob)
	if len(openPorts) > 0 {
		ports := slices.Clone(openPorts)
		slices.Sort(ports)
		ports = slices.Compact(ports)
		list := make([]string, len(ports))
		for i, p := range ports {
			list[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(&b, "\t\tiifname %q tcp dport { %s } accept\n", transitGlob, strings.Join(list, ", "))
	}
	fmt.Fprintf(&b, "\t\tiifname %q drop\n\t}\n", transitGlob)
	return replace(Host, b.String()), nil
}

// Load feeds a ruleset to `nft -f -` inside the network namespace at
// nsPath (the current one when empty), as one transaction.
func Load(nsPath, ruleset string) error {
	if _, err := netns.Run(nsPath, ruleset, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("load nftables ruleset: %w", err)
	}
	return nil
}
