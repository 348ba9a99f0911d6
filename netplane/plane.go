package netplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane/dnsmasq"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
	"github.com/ouroboros-cloud/ouro/netplane/nft"
)

// Config configures a Plane.
type Config struct {
	// StateDir holds per-host state: dnsmasq configs, leases, pid files.
	StateDir string
	// UnderlayAddress is the host's underlay IPv4 address; the interface
	// holding it is the underlay.
	UnderlayAddress string
	// HostNetNS is the path of the host network namespace; empty means the
	// namespace of the calling process. Tests and several agents on one
	// machine use it.
	HostNetNS string
	// NetNSDir is where router and instance namespaces are bound; default
	// /run/netns. Two planes on one machine need different directories.
	NetNSDir string
	// ResolvConf is read for upstream DNS when a network names none;
	// default /etc/resolv.conf.
	ResolvConf string
	// InstanceHostPorts are the TCP ports of this host that instances may
	// reach at the host's own addresses: the API server's, when one runs
	// here. Every other packet from an instance to the host itself is
	// dropped (docs/networking.md, "What instances can reach").
	InstanceHostPorts []uint16
	Logger            *slog.Logger
}

// Plane applies HostNetwork specs to one host.
type Plane struct {
	cfg      Config
	underlay netip.Addr
	log      *slog.Logger

	mu       sync.Mutex
	gateways map[string]netip.Addr // network UID → gateway, from the last Apply
	// applied are the networks the last Apply set up without failure, by
	// UID (nil before the first), and mtu the overlay MTU it used: what
	// ApplyPorts builds on.
	applied map[string]appliedNet
	mtu     int

	// arpMu guards the announcement of floating IPs on the underlay, apart
	// from mu so that SetLBActive does not wait for an Apply.
	arpMu    sync.Mutex
	fips     *floatingIPs    // of the last Apply; nil before the first
	lbActive map[string]bool // LB UIDs whose VIP is here; nil until read from lbActiveFile
	// lbConfirmed are the LB UIDs SetLBActive spoke of since this plane
	// was made; a flag only read from lbActiveFile may be stale.
	lbConfirmed map[string]bool
}

// New checks cfg and returns a Plane. It changes nothing on the host.
func New(cfg Config) (*Plane, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("netplane: StateDir is required")
	}
	ul, err := netip.ParseAddr(cfg.UnderlayAddress)
	if err != nil || !ul.Is4() {
		return nil, fmt.Errorf("netplane: underlay address %q: not an IPv4 address", cfg.UnderlayAddress)
	}
	if cfg.NetNSDir == "" {
		cfg.NetNSDir = netns.DefaultDir
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Plane{cfg: cfg, underlay: ul, log: cfg.Logger, gateways: map[string]netip.Addr{}}, nil
}

// NetNSPath returns the path of an instance's network namespace, which
// holds its interfaces once Apply has run with one of its ports.
func (p *Plane) NetNSPath(instanceUID string) string {
	return filepath.Join(p.cfg.NetNSDir, instanceNSName(instanceUID))
}

// InstanceDNS returns the nameservers an instance on the network should
// use: its gateway, where the network's dnsmasq listens. It is empty for a
// network the last Apply did not have.
func (p *Plane) InstanceDNS(networkUID string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gw, ok := p.gateways[networkUID]; ok {
		return []string{gw.String()}
	}
	return nil
}

func (p *Plane) routerNSPath(vni int) string {
	return filepath.Join(p.cfg.NetNSDir, routerNSName(vni))
}

// RouterNSPath returns the path of the router namespace of the network
// with VNI vni (which exists once Apply has run with it): it holds the
// network's bridge and the TAP devices of the virtual machines on it (see
// PortDevice); the agent probes instance health from there.
func (p *Plane) RouterNSPath(vni int) string { return p.routerNSPath(vni) }

// PortDevice returns the name of an instance's device on a network's
// bridge (the same in the router namespace of every network it is on).
// For a virtual machine it is the TAP device QEMU attaches to.
func (p *Plane) PortDevice(instanceUID string) string { return portDevName(instanceUID) }

func (p *Plane) dnsmasqDir(vni int) string {
	return filepath.Join(p.cfg.StateDir, "dnsmasq", strconv.Itoa(vni))
}

// Apply makes the host match spec. An invalid spec changes nothing. A
// network that fails to apply does not stop the others: its failure is a
// *NetworkError, and the errors are joined (NetworkErrors separates them
// from failures of the host's shared parts).
func (p *Plane) Apply(ctx context.Context, spec api.HostNetworkSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	nets, err := parseSpec(spec, func() []netip.Addr { return ResolvConfServers(p.cfg.ResolvConf) })
	if err != nil {
		return fmt.Errorf("netplane: %w", err)
	}
	p.gateways = map[string]netip.Addr{}
	for _, n := range nets {
		p.gateways[n.uid] = n.gateway
	}
	p.applied = nil // until this Apply says what it set up
	if err := os.MkdirAll(p.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("netplane: state dir: %w", err)
	}
	h, err := p.openHost()
	if err != nil {
		return err
	}
	defer h.close()

	var errs []error
	if len(nets) > 0 {
		if err := netns.WriteSysctl(p.cfg.HostNetNS, "net.ipv4.ip_forward", "1"); err != nil {
			return fmt.Errorf("netplane: %w", err)
		}
		rs, err := nft.HostRuleset(h.underlay.Attrs().Name, transitPrefix+"*", p.cfg.InstanceHostPorts)
		if err == nil {
			err = nft.Load(p.cfg.HostNetNS, rs)
		}
		if err != nil {
			return fmt.Errorf("netplane: host rules: %w", err)
		}
	}
	failed := map[int]bool{}
	for _, n := range nets {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.applyNetwork(h, n); err != nil {
			failed[n.vni] = true
			errs = append(errs, &NetworkError{UID: n.uid, Name: n.name, VNI: n.vni, Err: err})
		}
	}
	// Routes between the subnets of a VPC, once every router namespace
	// is there.
	legsFailed := map[int]bool{}
	for _, n := range nets {
		if n.vpc == "" || failed[n.vni] {
			continue
		}
		if err := p.applyLegs(n, failed); err != nil {
			legsFailed[n.vni] = true
			errs = append(errs, &NetworkError{UID: n.uid, Name: n.name, VNI: n.vni, Err: err})
		}
	}
	applied := map[string]appliedNet{}
	for _, n := range nets {
		if !failed[n.vni] && !legsFailed[n.vni] {
			applied[n.uid] = appliedNet{vni: n.vni, cidr: n.cidr.String(), gateway: n.gateway.String()}
		}
	}
	p.applied, p.mtu = applied, h.overlayMTU()
	if err := p.applyFloatingIPs(h, nets); err != nil {
		errs = append(errs, err)
	}
	if err := p.removeStale(h, nets); err != nil {
		errs = append(errs, err)
	}
	if len(nets) == 0 {
		if err := nft.Load(p.cfg.HostNetNS, nft.Delete(nft.Host)); err != nil {
			errs = append(errs, fmt.Errorf("remove host rules: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netplane: %w", err)
	}
	p.log.Debug("host network applied", "networks", len(nets))
	return nil
}

// applyNetwork realises one network: router namespace, ports, rules and
// dnsmasq.
func (p *Plane) applyNetwork(h *hostNS, n network) error {
	r, err := p.ensureRouter(h, n)
	if err != nil {
		return err
	}
	defer r.close()
	var errs []error
	for _, port := range n.ports {
		ensure := p.ensurePort
		if port.tap {
			ensure = p.ensureTap
		}
		if err := ensure(r, n, port); err != nil {
			errs = append(errs, fmt.Errorf("port %s: %w", port.name, err))
		}
	}
	if err := r.removeStalePorts(n); err != nil {
		errs = append(errs, err)
	}
	if err := p.loadRouterRules(n); err != nil {
		errs = append(errs, err)
	}
	if err := p.ensureDNSMasq(n); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (p *Plane) loadRouterRules(n network) error {
	rt := nft.Router{
		CIDR: n.cidr, Gateway: n.gateway, GatewayMAC: GatewayMAC(n.vni), NAT: n.nat,
		Siblings: n.siblingPrefixes(),
		Bridge:   bridgeName, VXLAN: vxlanName(n.vni), Transit: routerTransit,
	}
	for _, port := range n.ports {
		rt.Ports = append(rt.Ports, nft.Port{
			Device: port.dev, MAC: port.mac, IP: port.ip, FloatingIP: port.fip, VIP: port.vip,
			Ingress: port.ingress, Egress: port.egress, EgressRestricted: port.restrict,
		})
	}
	rs, err := nft.RouterRuleset(rt)
	if err != nil {
		return err
	}
	if err := nft.Load(p.routerNSPath(n.vni), rs); err != nil {
		return fmt.Errorf("router rules: %w", err)
	}
	return nil
}

func (p *Plane) ensureDNSMasq(n network) error {
	c := dnsmasq.Config{
		Dir: p.dnsmasqDir(n.vni), NetNS: p.routerNSPath(n.vni),
		CIDR: n.cidr, Gateway: n.gateway, Upstream: n.dns, Records: n.records,
		AddressDomain: api.AddressDNSDomain,
	}
	for _, port := range n.ports {
		c.Hosts = append(c.Hosts, dnsmasq.Host{MAC: port.mac, IP: port.ip, Name: port.name})
	}
	started, err := dnsmasq.Ensure(c)
	if err != nil {
		return err
	}
	if started {
		p.log.Info("dnsmasq started", "vni", n.vni)
	}
	return nil
}

// removeStale removes the router and instance namespaces, host devices and
// dnsmasq processes the spec no longer has.
func (p *Plane) removeStale(h *hostNS, nets []network) error {
	wantVNI := map[int]bool{}
	wantInst := map[string]bool{}
	for _, n := range nets {
		wantVNI[n.vni] = true
		for _, port := range n.ports {
			if !port.tap {
				wantInst[instanceNSName(port.instance)] = true
			}
		}
	}
	var errs []error
	// dnsmasq first: it holds its router namespace alive.
	dirs, _ := os.ReadDir(filepath.Join(p.cfg.StateDir, "dnsmasq"))
	for _, d := range dirs {
		vni, err := strconv.Atoi(d.Name())
		if err != nil || wantVNI[vni] {
			continue
		}
		if err := dnsmasq.Stop(p.dnsmasqDir(vni)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(p.dnsmasqDir(vni)); err != nil {
			errs = append(errs, fmt.Errorf("remove dnsmasq state: %w", err))
		}
		p.log.Info("dnsmasq stopped", "vni", vni)
	}
	// Host devices: transits and VXLAN devices left by a crash.
	if err := h.removeStaleDevices(wantVNI); err != nil {
		errs = append(errs, err)
	}
	routers, err := netns.List(p.cfg.NetNSDir, routerNSPrefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range routers {
		vni, err := strconv.Atoi(strings.TrimPrefix(name, routerNSPrefix))
		if err == nil && wantVNI[vni] {
			continue
		}
		if err := deleteNS(filepath.Join(p.cfg.NetNSDir, name)); err != nil {
			errs = append(errs, err)
		}
		p.log.Info("router namespace removed", "name", name)
	}
	insts, err := netns.List(p.cfg.NetNSDir, instanceNSPrefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range insts {
		if wantInst[name] {
			continue
		}
		if err := deleteNS(filepath.Join(p.cfg.NetNSDir, name)); err != nil {
			errs = append(errs, err)
		}
		p.log.Info("instance namespace removed", "name", name)
	}
	return errors.Join(errs...)
}
