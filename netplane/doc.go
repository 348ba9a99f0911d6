// Package netplane realises a host's share of the private networks
// (api.HostNetworkSpec) with Linux namespaces, bridges, VXLAN, nftables
// and dnsmasq, as docs/networking.md describes. One router namespace per
// network per host:
//
//	host netns        ourt<vni> ─┐  table ip ouro-host (masquerade 100.64.0.0/10
//	(underlay dev)               │  to the underlay), FIP/32 routes, proxy ARP
//	router netns ouro-n<vni>:  transit ── routing ── br0 (gateway IP, MAC 0e:00:00:<vni>)
//	                                                  ├─ ourx<vni> VXLAN, dstport 4789
//	                                                  └─ ourp<uid> ── eth0 in ouro-i<uid>
//	  dnsmasq on the gateway IP; tables ip ouro, inet ouro-sg, bridge ouro-sg
//
// Apply is declarative: it creates or corrects what the spec has and
// removes every ouro object the spec no longer has, without recreating what
// is already right, so it is safe to repeat and to run again after a crash
// at any point. Running instances are not disturbed by a repeated Apply:
// devices are kept, nftables tables are replaced atomically (conntrack and
// its NAT bindings survive), and dnsmasq is adopted from its pid file and
// only signalled (SIGHUP) when its hosts files change.
//
// # Names
//
// Router namespace ouro-n<vni>; instance namespace ouro-i<first 12 letters
// and digits of the instance UID>, under Config.NetNSDir (/run/netns). A
// load balancer's port ("lb" driver, HostPort.Instance = the load
// balancer's UID) has a namespace named the same way, made by the same
// code as a container's; HAProxy and keepalived run in it.
// Host devices: ourt<vni> (transit veth) and, only between its creation and
// its move into the router namespace, ourx<vni> (VXLAN). Inside a router
// namespace: br0, ourx<vni>, transit and ourp<11 of the instance UID>.
// Inside an instance namespace: eth0, eth1, ... in the order of the
// instance's networks in the spec; the default route is on eth0. The only
// host objects Apply touches are devices matching our[tx]<digits>, routes
// on them, the table ip ouro-host, and proxy ARP entries listed in
// StateDir/proxy-arp.
//
// # VPCs
//
// Entries with the same HostNetworkEntry.VPC are subnets of one VPC: the
// router namespace of each holds a leg ourv<vni of another> whose peer,
// ourl<its vni>, is a port of the other's bridge, with the other's prefix
// routed onto it. Routed packets enter the destination subnet's layer 2
// on the sender's host with the leg's own MAC and cross that subnet's
// VXLAN to the destination (docs/networking.md, "VPCs").
//
// # Load balancers
//
// An "lb" port's VIP is admitted as its source (bridge) and matched as its
// destination (security groups) like its address, and Apply leaves it on
// the port's eth0 when keepalived has put it there. Its floating IP is
// DNATed to the VIP on every LB host, but the underlay hears of it (proxy
// ARP, and a gratuitous ARP when it moves) only from the host where
// SetLBActive says the VIP is; the flag is kept in StateDir/lb-active.
//
// # Transit addresses
//
// The transit of a network is the /30 number (VNI mod 2^20) of
// 100.64.0.0/10: host end .1, router end .2 of that block (TransitPrefixes).
// It depends only on the VNI, so it is the same after every restart; two
// VNIs 2^20 apart would collide, which needs over a million networks. The
// range is carrier-grade NAT space and never leaves the host: the host
// masquerades it to the underlay. A host whose underlay itself uses
// 100.64.0.0/10 would need another range.
//
// # Kernel settings
//
// Host namespace: net.ipv4.ip_forward=1 (set when there is a network, never
// reset). Router namespaces: ip_forward=1, net.bridge.bridge-nf-call-iptables=1
// (per namespace since Linux 5.3; with CONFIG_BRIDGE_NETFILTER=y it exists
// without loading a module) so that bridged IPv4 passes the inet hooks with
// conntrack, which makes the security groups stateful although the bridge
// family has no conntrack here; IPv6 disabled. Overlay MTU is the
// underlay's less 50 (VXLAN over IPv4).
//
// # Limits
//
// IPv4 only (instances' IPv6 frames are dropped at the bridge). Proxy ARP
// answers for floating IPs are delayed by the underlay's proxy_delay
// (default up to 0.8 s), which is left as the host has it. A forward-drop
// policy in another table of the host (Docker's, for instance) also applies
// to transit traffic: nftables verdicts of other tables cannot be
// overridden. dnsmasq drops privileges to nobody, so StateDir and its
// parents must be traversable (mode o+x).
package netplane
