package api

// Network is a private layer-2 network of a project, spanning every host
// that runs one of its instances (VXLAN, one VNI per network).
type Network struct {
	Kind     string        `json:"kind"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     NetworkSpec   `json:"spec"`
	Status   NetworkStatus `json:"status"`
}

// NetworkSpec is what the user asks of a network.
type NetworkSpec struct {
	// CIDR is an IPv4 prefix, /16 to /29.
	CIDR string `json:"cidr"`
	// Gateway is the router address inside CIDR; default the first host
	// address.
	Gateway string `json:"gateway,omitempty"`
	// DNS lists upstream resolvers the network's DNS forwards to; default
	// the host's.
	DNS []string `json:"dns,omitempty"`
	// NAT gives instances egress to the outside through the host
	// (masquerade); default true.
	NAT *bool `json:"nat,omitempty"`
	// VPC, when set, names the project's VPC the network is a subnet of:
	// CIDR lies inside the VPC's and overlaps no other subnet of it, and
	// its instances reach those of the VPC's other subnets. It cannot
	// change.
	VPC string `json:"vpc,omitempty"`
}

// NetworkStatus is set by the server.
type NetworkStatus struct {
	// VNI is the VXLAN network identifier, unique in the cluster.
	VNI   int    `json:"vni,omitempty"`
	Phase string `json:"phase,omitempty"`
	// VPCUID is the UID of the VPC of spec.vpc, set when the network
	// became its subnet (a VPC of the same name made later is another).
	VPCUID string `json:"vpcUID,omitempty"`
	// Conditions has ConditionNetworkApplied once a host failed to set
	// the network up.
	Conditions []Condition `json:"conditions,omitempty"`
}

// ConditionNetworkApplied is false (reason ReasonNetworkSetupFailed) while
// some host reports that it cannot set the network up, naming the hosts
// and causes; it turns true when none does.
const ConditionNetworkApplied = "Applied"

// ReasonNetworkSetupFailed: a host could not set up a network.
const ReasonNetworkSetupFailed = "SetupFailed"

// NATEnabled reports whether egress NAT is on (the default).
func (n *Network) NATEnabled() bool { return n.Spec.NAT == nil || *n.Spec.NAT }

// Meta returns the network's metadata.
func (o *Network) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns NetworkKind.
func (o *Network) GetKind() *Kind { return NetworkKind }

// SecurityGroup is a stateful firewall attached to instance interfaces:
// ingress is denied unless a rule allows it, egress is allowed unless the
// group has egress rules (then only those are allowed).
type SecurityGroup struct {
	Kind     string              `json:"kind"`
	Metadata ObjectMeta          `json:"metadata"`
	Spec     SecurityGroupSpec   `json:"spec"`
	Status   SecurityGroupStatus `json:"status"`
}

// SecurityGroupSpec holds the rules.
type SecurityGroupSpec struct {
	Description string              `json:"description,omitempty"`
	Rules       []SecurityGroupRule `json:"rules,omitempty"`
}

// SecurityGroupRule allows one kind of traffic.
type SecurityGroupRule struct {
	// ID is assigned by the server (a short hash of the rule) and names the
	// rule for deletion.
	ID string `json:"id,omitempty"`
	// Direction is "ingress" or "egress".
	Direction string `json:"direction"`
	// Protocol is "tcp", "udp", "icmp" or "all".
	Protocol string `json:"protocol"`
	// PortMin and PortMax bound the destination ports for tcp and udp
	// (1-65535); zero for other protocols.
	PortMin int `json:"portMin,omitempty"`
	PortMax int `json:"portMax,omitempty"`
	// CIDR is the remote prefix (source for ingress, destination for
	// egress); empty with SourceGroup.
	CIDR string `json:"cidr,omitempty"`
	// SourceGroup names a group of the same project whose members are the
	// remote side.
	SourceGroup string `json:"sourceGroup,omitempty"`
}

// SecurityGroupStatus is empty for now.
type SecurityGroupStatus struct{}

// Meta returns the group's metadata.
func (o *SecurityGroup) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns SecurityGroupKind.
func (o *SecurityGroup) GetKind() *Kind { return SecurityGroupKind }

// FloatingIPPool is an admin-defined range of addresses on the external
// (underlay) network that floating IPs are allocated from.
type FloatingIPPool struct {
	Kind     string               `json:"kind"`
	Metadata ObjectMeta           `json:"metadata"`
	Spec     FloatingIPPoolSpec   `json:"spec"`
	Status   FloatingIPPoolStatus `json:"status"`
}

// FloatingIPPoolSpec is the range.
type FloatingIPPoolSpec struct {
	// CIDR is the external subnet the addresses live in.
	CIDR string `json:"cidr"`
	// Start and End bound the addresses handed out (inclusive).
	Start string `json:"start"`
	End   string `json:"end"`
}

// FloatingIPPoolStatus counts use.
type FloatingIPPoolStatus struct {
	Allocated int `json:"allocated,omitempty"`
}

// Meta returns the pool's metadata.
func (o *FloatingIPPool) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns FloatingIPPoolKind.
func (o *FloatingIPPool) GetKind() *Kind { return FloatingIPPoolKind }

// FloatingIP is an external address of a project that can be associated
// with an instance: traffic to it reaches the instance wherever it runs,
// and the instance's own traffic leaves with it as source.
type FloatingIP struct {
	Kind     string           `json:"kind"`
	Metadata ObjectMeta       `json:"metadata"`
	Spec     FloatingIPSpec   `json:"spec"`
	Status   FloatingIPStatus `json:"status"`
}

// FloatingIPSpec says where the address comes from and where it goes.
type FloatingIPSpec struct {
	// Pool to allocate from; default: the only pool, if there is one.
	Pool string `json:"pool,omitempty"`
	// Instance is the associated instance's name in the same project, or
	// empty.
	Instance string `json:"instance,omitempty"`
}

// FloatingIPStatus is set by the server.
type FloatingIPStatus struct {
	// Address is allocated on create and never changes.
	Address string `json:"address,omitempty"`
	// InstanceIP and Host say where traffic is sent now.
	InstanceIP string `json:"instanceIP,omitempty"`
	Host       string `json:"host,omitempty"`
}

// Meta returns the floating IP's metadata.
func (o *FloatingIP) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns FloatingIPKind.
func (o *FloatingIP) GetKind() *Kind { return FloatingIPKind }

// HostNetwork is the network state one host must realise, computed by the
// network controller from networks, instances, security groups and
// floating IPs, and applied by the host's agent. Its name is the host's.
// Agents read only their own; they never need the objects it is made of.
type HostNetwork struct {
	Kind     string            `json:"kind"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     HostNetworkSpec   `json:"spec"`
	Status   HostNetworkStatus `json:"status"`
}

// HostNetworkSpec lists the networks with instances on the host.
type HostNetworkSpec struct {
	Networks []HostNetworkEntry `json:"networks,omitempty"`
	// LoadBalancers are the load balancers this host runs (their ports
	// are in Networks).
	LoadBalancers []HostLoadBalancer `json:"loadBalancers,omitempty"`
}

// HostNetworkEntry is one network as a host sees it.
type HostNetworkEntry struct {
	// UID of the Network object; stable names of host devices derive from
	// the VNI.
	UID     string   `json:"uid"`
	Name    string   `json:"name"`
	Project string   `json:"project"`
	VNI     int      `json:"vni"`
	CIDR    string   `json:"cidr"`
	Gateway string   `json:"gateway"`
	DNS     []string `json:"dns,omitempty"`
	NAT     bool     `json:"nat"`
	// VPC is the UID of the VPC the network is a subnet of, if any. The
	// host routes between the entries of one VPC: the network controller
	// gives a host every subnet of a VPC it has a port in.
	VPC string `json:"vpc,omitempty"`
	// Peers are the underlay addresses of the other hosts with instances
	// on this network (VXLAN flooding list).
	Peers []string `json:"peers,omitempty"`
	// Records are every instance of the network, for DNS.
	Records []DNSRecord `json:"records,omitempty"`
	// Ports are the interfaces of this host's instances.
	Ports []HostPort `json:"ports,omitempty"`
}

// DNSRecord maps an instance name to its address in a network.
type DNSRecord struct {
	Name string `json:"name"`
	IP   string `json:"ip"`
}

// HostPort is one instance interface on the host.
type HostPort struct {
	// Instance is the instance UID.
	Instance string `json:"instance"`
	Name     string `json:"name"`
	MAC      string `json:"mac"`
	IP       string `json:"ip"`
	// Driver is the instance's driver. A "vm" port is a TAP device on the
	// bridge that QEMU attaches to; any other is a veth pair into the
	// instance's network namespace. An "lb" port is a load balancer's
	// (Instance is the LoadBalancer's UID): a veth pair into the load
	// balancer's namespace, where HAProxy and keepalived run.
	Driver string `json:"driver,omitempty"`
	// VIP is, for an "lb" port, the virtual address that keepalived may
	// put on it: admitted as the port's source and matched as its
	// destination like IP.
	VIP string `json:"vip,omitempty"`
	// FloatingIP, when set, is DNATed to IP (to VIP on an "lb" port) and
	// used as source for the instance's traffic to the outside. On an "lb"
	// port the host announces it only while the VIP is on this host.
	FloatingIP string `json:"floatingIP,omitempty"`
	// Ingress and Egress are the resolved rules of all the port's security
	// groups (source groups expanded to member addresses).
	Ingress []FirewallRule `json:"ingress,omitempty"`
	Egress  []FirewallRule `json:"egress,omitempty"`
	// EgressRestricted is true when some group has egress rules: only
	// Egress is allowed then.
	EgressRestricted bool `json:"egressRestricted,omitempty"`
}

// FirewallRule is a resolved security group rule.
type FirewallRule struct {
	Protocol string `json:"protocol"`
	PortMin  int    `json:"portMin,omitempty"`
	PortMax  int    `json:"portMax,omitempty"`
	// CIDRs are the remote prefixes; empty means none (a source group
	// without members).
	CIDRs []string `json:"cidrs"`
}

// HostNetworkStatus is what the agent reports after applying.
type HostNetworkStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Applied is true when every network was applied.
	Applied bool   `json:"applied,omitempty"`
	Message string `json:"message,omitempty"`
	// Failed lists the networks that could not be applied on the host;
	// the others were, and their instances run.
	Failed []NetworkFailure `json:"failed,omitempty"`
	// LoadBalancers reports each load balancer of the spec.
	LoadBalancers []HostLBStatus `json:"loadBalancers,omitempty"`
}

// NetworkFailure is a network a host could not set up, and why.
type NetworkFailure struct {
	// UID and Name are the network's.
	UID     string `json:"uid"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// Meta returns the host network's metadata.
func (o *HostNetwork) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns HostNetworkKind.
func (o *HostNetwork) GetKind() *Kind { return HostNetworkKind }
