package api

import "time"

// LoadBalancer gives a service of a project one address, its VIP on one
// of the project's networks, and spreads the connections to it over pools
// of instances (an instance group's members or a list of instances). It
// runs HAProxy on one host, or on two (active/standby, VRRP moving the
// VIP) on different hosts.
type LoadBalancer struct {
	Kind     string             `json:"kind"`
	Metadata ObjectMeta         `json:"metadata"`
	Spec     LoadBalancerSpec   `json:"spec"`
	Status   LoadBalancerStatus `json:"status"`
}

// LoadBalancerSpec is what the user asks of a load balancer.
type LoadBalancerSpec struct {
	// Network is the name of the project's network the VIP lives on and
	// the members are reached through.
	Network string `json:"network"`
	// VIP, when set, asks for this address of the network; otherwise the
	// server allocates one. It is claimed like an instance's address and
	// never handed out twice.
	VIP string `json:"vip,omitempty"`
	// FloatingIP asks for an address from a floating IP pool that outside
	// clients reach the VIP through; FloatingIPPool names the pool
	// (default: the only pool).
	FloatingIP     bool   `json:"floatingIP,omitempty"`
	FloatingIPPool string `json:"floatingIPPool,omitempty"`
	// Hosts is the number of LB hosts: 1, or 2 for active/standby on
	// different hosts (default 1).
	Hosts int `json:"hosts,omitempty"`
	// DrainTimeoutSeconds bounds how long a leaving member keeps its open
	// connections before it is removed (default 30, at most 3600).
	DrainTimeoutSeconds int `json:"drainTimeoutSeconds,omitempty"`
	// Listeners are the ports the VIP serves.
	Listeners []Listener `json:"listeners,omitempty"`
	// Pools are the sets of members listeners send to.
	Pools []Pool `json:"pools,omitempty"`
}

// Listener protocols.
const (
	ListenerTCP   = "tcp"
	ListenerHTTP  = "http"
	ListenerHTTPS = "https"
)

// Listener is one port of the VIP.
type Listener struct {
	// Name identifies the listener in the load balancer (default
	// "<protocol>-<port>").
	Name string `json:"name,omitempty"`
	// Protocol is tcp, http or https (TLS terminated at the load
	// balancer with Certificate and Key).
	Protocol string `json:"protocol"`
	// Port is the VIP's port, unique among the listeners.
	Port int `json:"port"`
	// DefaultPool receives what no rule matches.
	DefaultPool string `json:"defaultPool"`
	// Rules route http and https requests by host or path prefix; the
	// first that matches wins.
	Rules []ListenerRule `json:"rules,omitempty"`
	// Certificate is the PEM certificate chain (leaf first) and Key its
	// PEM private key, for https. The key is never returned by the API.
	Certificate string `json:"certificate,omitempty"`
	Key         string `json:"key,omitempty"`
}

// ListenerRule sends the http requests that match to Pool. A rule with
// both Host and PathPrefix needs both to match.
type ListenerRule struct {
	// Host matches the request's Host header (without port), exactly.
	Host string `json:"host,omitempty"`
	// PathPrefix matches the start of the request path ("/api").
	PathPrefix string `json:"pathPrefix,omitempty"`
	Pool       string `json:"pool"`
}

// Pool algorithms.
const (
	AlgorithmRoundRobin       = "round-robin"
	AlgorithmLeastConnections = "least-connections"
	AlgorithmSourceHash       = "source-hash"
)

// Pool is a set of members with a balancing algorithm and a health
// monitor. Members come from an instance group (they follow it as it
// scales, rolls out and heals) or from a list of instances.
type Pool struct {
	// Name identifies the pool in the load balancer.
	Name string `json:"name"`
	// Algorithm is round-robin (the default), least-connections or
	// source-hash.
	Algorithm string `json:"algorithm,omitempty"`
	// Group names an instance group of the project; Instances lists
	// instances of the project. Exactly one of them is set.
	Group     string         `json:"group,omitempty"`
	Instances []PoolInstance `json:"instances,omitempty"`
	// Port is the members' port.
	Port int `json:"port"`
	// Weight of each member, 1-256 (default 1); an instance of Instances
	// may set its own.
	Weight int `json:"weight,omitempty"`
	// HealthMonitor checks the members (default: tcp on Port).
	HealthMonitor HealthMonitor `json:"healthMonitor,omitempty"`
}

// PoolInstance is one instance named as a pool member.
type PoolInstance struct {
	Instance string `json:"instance"`
	// Weight overrides the pool's weight for this member (0: the pool's).
	Weight int `json:"weight,omitempty"`
}

// Health monitor types.
const (
	MonitorTCP  = "tcp"
	MonitorHTTP = "http"
)

// HealthMonitor says how the load balancer checks each member. A member
// is taken out after Fall failed checks in a row and put back after Rise
// good ones.
type HealthMonitor struct {
	// Type is tcp (the default: a connection succeeds) or http (GET Path
	// answers ExpectedStatus).
	Type string `json:"type,omitempty"`
	// Path of the http check (default "/").
	Path string `json:"path,omitempty"`
	// ExpectedStatus is a status code or a range "200-399" (default
	// "200-399").
	ExpectedStatus string `json:"expectedStatus,omitempty"`
	// IntervalMillis between checks (default 1000, 100-60000),
	// TimeoutMillis per check (default 1000, at most the interval).
	IntervalMillis int `json:"intervalMillis,omitempty"`
	TimeoutMillis  int `json:"timeoutMillis,omitempty"`
	// Rise and Fall (default 2 each, 1-10).
	Rise int `json:"rise,omitempty"`
	Fall int `json:"fall,omitempty"`
}

// LoadBalancerStatus is written by the server (addresses, at create) and
// the load balancer controller (hosts, members, health). Agents report
// through their HostNetwork's status.
type LoadBalancerStatus struct {
	// Phase is Pending (no host serves yet), Active (every host serves)
	// or Degraded (some host is missing or failed).
	Phase string `json:"phase,omitempty"`
	// NetworkUID is the served network's UID, fixed at create.
	NetworkUID string `json:"networkUID,omitempty"`
	// VIP is the virtual address on the network.
	VIP string `json:"vip,omitempty"`
	// DNSName is the VIP's name in the network's DNS
	// (LoadBalancerDNSName).
	DNSName string `json:"dnsName,omitempty"`
	// FloatingIP is the outside address, with FloatingIPPool its pool.
	FloatingIP     string `json:"floatingIP,omitempty"`
	FloatingIPPool string `json:"floatingIPPool,omitempty"`
	// PortAddresses are the LB hosts' own addresses on the network, one
	// per spec.hosts, claimed at create (VRRP speaks between them).
	PortAddresses []string `json:"portAddresses,omitempty"`
	// Hosts are where the load balancer runs (placed by the controller).
	Hosts []LoadBalancerHost `json:"hosts,omitempty"`
	// Members are the resolved members of every pool.
	Members []LoadBalancerMember `json:"members,omitempty"`
	// VRID is the VRRP router id (1-255) the controller allocated, unique
	// among the load balancers of the network and kept for the load
	// balancer's life.
	VRID int `json:"vrid,omitempty"`
	// ObservedGeneration is the spec generation the controller acted on.
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions,omitempty"`
}

// Load balancer phases.
const (
	LBPending  = "Pending"
	LBActive   = "Active"
	LBDegraded = "Degraded"
)

// LoadBalancerHost is one host the load balancer runs on.
type LoadBalancerHost struct {
	// Name is the host's name.
	Name string `json:"name"`
	// Address is the host's port address on the network (one of
	// PortAddresses); Priority its VRRP priority (the higher is preferred).
	Address  string `json:"address"`
	Priority int    `json:"priority"`
	// Ready is true when the host's agent reports HAProxy (and keepalived)
	// running with the current configuration; Active when it holds the
	// VIP.
	Ready  bool `json:"ready,omitempty"`
	Active bool `json:"active,omitempty"`
	// Message says why the host is not ready.
	Message string `json:"message,omitempty"`
}

// Member states.
const (
	MemberActive   = "active"
	MemberDraining = "draining"
)

// Member health as the load balancer sees it.
const (
	HealthUp      = "up"
	HealthDown    = "down"
	HealthUnknown = "unknown"
)

// LoadBalancerMember is one member of a pool.
type LoadBalancerMember struct {
	Pool     string `json:"pool"`
	Instance string `json:"instance"`
	// InstanceUID tells a replaced member (same name, stateful groups)
	// from its predecessor.
	InstanceUID string `json:"instanceUID,omitempty"`
	Address     string `json:"address"`
	Port        int    `json:"port"`
	Weight      int    `json:"weight"`
	// State is active, or draining: the member is leaving and gets no new
	// connections.
	State string `json:"state"`
	// Health is up, down or unknown, as the active host's checks see it;
	// Since is when it last changed.
	Health string     `json:"health"`
	Since  *time.Time `json:"since,omitempty"`
}

// LoadBalancerDNSName is the name the DNS of a load balancer's network
// answers with its VIP: NAME.lb, apart from the instances' names (a group
// and the load balancer in front of it are often both "web").
func LoadBalancerDNSName(name string) string { return name + ".lb" }

// Meta returns the load balancer's metadata.
func (o *LoadBalancer) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns LoadBalancerKind.
func (o *LoadBalancer) GetKind() *Kind { return LoadBalancerKind }

// HostLoadBalancer is a load balancer as one of its hosts must run it:
// everything the host's agent needs, resolved by the network controller,
// so the agent never reads LoadBalancer objects.
type HostLoadBalancer struct {
	// UID of the LoadBalancer; the namespace and processes are named after
	// it. Name and Project are for messages.
	UID     string `json:"uid"`
	Name    string `json:"name"`
	Project string `json:"project"`
	// NetworkUID is the network the LB's port is on (the port itself is in
	// that network's HostNetworkEntry.Ports with driver "lb" and Instance
	// set to this UID).
	NetworkUID string `json:"networkUID"`
	// VIP is the virtual address; Address the host's own port address and
	// Prefix the network's prefix length.
	VIP     string `json:"vip"`
	Address string `json:"address"`
	Prefix  int    `json:"prefix"`
	// Peer is the other LB host's port address (empty with one host);
	// Priority this host's VRRP priority. With no peer, the VIP is simply
	// configured on the port.
	Peer     string `json:"peer,omitempty"`
	Priority int    `json:"priority,omitempty"`
	// VRID is the VRRP router id (1-255), unique among the load balancers
	// of the network.
	VRID int `json:"vrid,omitempty"`
	// DrainTimeoutSeconds bounds draining (see LoadBalancerSpec).
	DrainTimeoutSeconds int `json:"drainTimeoutSeconds"`
	// Listeners carry the certificate and key of https listeners.
	Listeners []Listener `json:"listeners,omitempty"`
	// Pools are the spec's pools (Group and Instances are not needed) with
	// Members resolved.
	Pools []HostLBPool `json:"pools,omitempty"`
}

// HostLBPool is a pool with its members resolved to addresses.
type HostLBPool struct {
	Name          string         `json:"name"`
	Algorithm     string         `json:"algorithm"`
	HealthMonitor HealthMonitor  `json:"healthMonitor"`
	Members       []HostLBMember `json:"members,omitempty"`
}

// HostLBMember is one member as HAProxy sees it. Name is stable for the
// member's life (its instance UID), so membership changes are runtime
// changes, not reloads.
type HostLBMember struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
	Address  string `json:"address"`
	Port     int    `json:"port"`
	Weight   int    `json:"weight"`
	// Draining members get no new connections.
	Draining bool `json:"draining,omitempty"`
}

// HostLBStatus is what an LB host's agent reports about one load balancer.
type HostLBStatus struct {
	UID string `json:"uid"`
	// Ready: HAProxy (and keepalived) run with the current configuration.
	Ready   bool   `json:"ready"`
	Message string `json:"message,omitempty"`
	// Active: this host holds the VIP now.
	Active bool `json:"active"`
	// Members reports each member's health and, for draining members,
	// whether their connections have finished.
	Members []HostLBMemberStatus `json:"members,omitempty"`
}

// HostLBMemberStatus is one member's health as one host's HAProxy sees it.
type HostLBMemberStatus struct {
	Pool string `json:"pool"`
	// Name is the HostLBMember's name (instance UID).
	Name   string `json:"name"`
	Health string `json:"health"`
	// Sessions is a draining member's current connection count (0 for
	// the others: a busy member's count changes all the time, and every
	// change would rewrite the host's status); Drained is true for a
	// draining member with none left.
	Sessions int  `json:"sessions"`
	Drained  bool `json:"drained,omitempty"`
}
