package api

import (
	"net/netip"
	"strings"
)

// VPC is a project's virtual private cloud: an IPv4 prefix whose networks
// (its subnets, Network.spec.vpc) reach each other through the VPC's
// implicit router, as in AWS, while networks of other VPCs, or in none,
// stay isolated from them.
type VPC struct {
	Kind     string     `json:"kind"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     VPCSpec    `json:"spec"`
	Status   VPCStatus  `json:"status"`
}

// VPCSpec is what the user asks of a VPC.
type VPCSpec struct {
	// CIDR is an IPv4 prefix, /16 to /28; every subnet lies inside it.
	// It cannot change.
	CIDR string `json:"cidr"`
	// EnableDNSSupport says the subnets' DNS server answers: it always
	// does, so only true (or nothing) is admitted. EnableDNSHostnames says
	// instances get DNS names (default true in the default VPC, false in
	// others, as in AWS): EC2's DescribeInstances shows the name its
	// subnet's DNS answers for its address (AddressName) as its
	// privateDnsName. The instance's own name resolves too.
	EnableDNSSupport   *bool `json:"enableDnsSupport,omitempty"`
	EnableDNSHostnames *bool `json:"enableDnsHostnames,omitempty"`
}

// VPCStatus is set by the server.
type VPCStatus struct {
	// Default marks the project's default VPC, whose subnet is the
	// project's default network.
	Default bool `json:"default,omitempty"`
	// SecurityGroup is the VPC's default security group: the project's
	// group "default".
	SecurityGroup string `json:"securityGroup,omitempty"`
	// RouteTable is the VPC's main route table.
	RouteTable RouteTable `json:"routeTable"`
	// NetworkACL is the VPC's default network ACL: it allows all
	// traffic, and only security groups filter.
	NetworkACL NetworkACL `json:"networkACL"`
}

// RouteTable is the routes of a VPC's implicit router.
type RouteTable struct {
	Routes []Route `json:"routes"`
}

// Route sends a destination prefix to a target: "local" (the VPC's
// subnets, routed between them) or "nat" (the outside, through the
// host's egress NAT, when the subnets have NAT on).
type Route struct {
	Destination string `json:"destination"`
	Target      string `json:"target"`
}

// Route targets.
const (
	RouteTargetLocal = "local"
	RouteTargetNAT   = "nat"
)

// NetworkACL is a VPC's stateless filter, in rule-number order.
type NetworkACL struct {
	Entries []NetworkACLEntry `json:"entries"`
}

// NetworkACLEntry is one rule of a network ACL.
type NetworkACLEntry struct {
	RuleNumber int    `json:"ruleNumber"`
	Egress     bool   `json:"egress"`
	Protocol   string `json:"protocol"`
	CIDR       string `json:"cidr"`
	Action     string `json:"action"`
}

// DNSSupport reports whether the VPC's DNS answers (default true).
func (v *VPC) DNSSupport() bool { return v.Spec.EnableDNSSupport == nil || *v.Spec.EnableDNSSupport }

// DNSHostnames reports whether instances get DNS names (default: only in
// the default VPC).
func (v *VPC) DNSHostnames() bool {
	if v.Spec.EnableDNSHostnames == nil {
		return v.Status.Default
	}
	return *v.Spec.EnableDNSHostnames
}

// Meta returns the VPC's metadata.
func (o *VPC) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns VPCKind.
func (o *VPC) GetKind() *Kind { return VPCKind }

// AddressDNSDomain is the domain under which every network's DNS server
// answers a name for each address of the network, as AWS's resolver does
// in a VPC: ip-172-31-0-5.ouro-1.compute.internal is 172.31.0.5, and back.
const AddressDNSDomain = "ouro-1.compute.internal"

// AddressName is the DNS name of an IPv4 address of a network (under
// AddressDNSDomain), or "" for what is not one.
func AddressName(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		return ""
	}
	return "ip-" + strings.ReplaceAll(a.String(), ".", "-") + "." + AddressDNSDomain
}
