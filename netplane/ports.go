package netplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ouroboros-cloud/ouro/api"
)

// ErrApplyAll says ApplyPorts cannot set up the ports asked for alone:
// Apply must (a network new on this host or changed, a port that is a
// TAP, a load balancer's or one with a floating IP, no Apply yet).
var ErrApplyAll = errors.New("netplane: the ports need a full apply")

// appliedNet is what the last Apply made of a network that it set up
// without failure: what a port added alone relies on.
type appliedNet struct {
	vni     int
	cidr    string
	gateway string
}

// ApplyPorts sets up the ports of the instances with the given UIDs as
// spec has them, and loads the rules of their networks (every port's
// security groups, as Apply would), on a host where the last Apply
// already set up those networks. It is the start of a new instance: its
// namespace, device and rules are in place when it returns nil, while
// what else spec changes (DNS records, floating IPs, other networks,
// removals) waits for the Apply of the same spec, which the caller runs
// next. Nothing else is touched; when the ports cannot be set up alone
// it returns an error matching ErrApplyAll and changes nothing.
func (p *Plane) ApplyPorts(ctx context.Context, spec api.HostNetworkSpec, uids []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.applied == nil {
		return ErrApplyAll
	}
	nets, err := parseSpec(spec, func() []netip.Addr { return ResolvConfServers(p.cfg.ResolvConf) })
	if err != nil {
		return fmt.Errorf("netplane: %w", err)
	}
	type work struct {
		n     network
		ports []port
	}
	var todo []work
	found := map[string]bool{}
	for _, n := range nets {
		var ports []port
		for _, pt := range n.ports {
			if !slices.Contains(uids, pt.instance) {
				continue
			}
			if pt.tap || pt.lb || pt.fip.IsValid() {
				return fmt.Errorf("port of %s: %w", pt.instance, ErrApplyAll)
			}
			ports = append(ports, pt)
			found[pt.instance] = true
		}
		if len(ports) == 0 {
			continue
		}
		was, ok := p.applied[n.uid]
		if !ok || was != (appliedNet{vni: n.vni, cidr: n.cidr.String(), gateway: n.gateway.String()}) {
			return fmt.Errorf("network %s: %w", n.name, ErrApplyAll)
		}
		todo = append(todo, work{n, ports})
	}
	if len(found) != len(uids) {
		return fmt.Errorf("instances without ports in the spec: %w", ErrApplyAll)
	}
	for _, w := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.applyPorts(w.n, w.ports); err != nil {
			return fmt.Errorf("netplane: %w", &NetworkError{UID: w.n.uid, Name: w.n.name, VNI: w.n.vni, Err: err})
		}
	}
	return nil
}

// applyPorts makes ports on the existing router of n, then loads n's
// rules.
func (p *Plane) applyPorts(n network, ports []port) error {
	l, err := openNS(p.routerNSPath(n.vni))
	if err != nil {
		return err
	}
	r := &router{nsLink: l, path: p.routerNSPath(n.vni), mtu: p.mtu}
	defer r.close()
	if r.bridge, err = r.link(bridgeName); err != nil || r.bridge == nil {
		return fmt.Errorf("router bridge: %w", errors.Join(err, ErrApplyAll))
	}
	for _, pt := range ports {
		if err := p.ensurePort(r, n, pt); err != nil {
			return fmt.Errorf("port %s: %w", pt.name, err)
		}
	}
	return p.loadRouterRules(n)
}
