package netplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A load balancer with two hosts has a port on each, both with the same
// VIP and floating IP, and both routers DNAT the floating IP to the VIP;
// keepalived puts the VIP on one of them. The underlay must send the
// floating IP's traffic to that host, so only it answers ARP for the
// floating IP (proxy ARP), and it announces the address with gratuitous
// ARP when it takes the VIP over. Its data plane tells the plane with
// SetLBActive; the plane remembers the flag in lbActiveFile, so that an
// Apply, or a new Plane after an agent restart, neither withdraws the
// announcement of an active load balancer nor makes one for an inactive
// one.
//
//	outside ── underlay ──▶ host 1 (VIP here: proxy ARP, GARP) ─▶ router: FIP → VIP ─▶ lb ns
//	                        host 2 (standby: route and DNAT, no proxy ARP)

// lbActiveFile lists, one UID a line, the load balancers whose VIP is on
// this host.
const lbActiveFile = "lb-active"

// floatingIPs are the floating IPs of an applied spec.
type floatingIPs struct {
	// fixed are the instances' floating IPs, always announced.
	fixed map[netip.Addr]bool
	// lbs maps the UID of every load balancer with a port here to its
	// floating IP (invalid when it has none).
	lbs map[string]netip.Addr
}

func newFloatingIPs(nets []network) *floatingIPs {
	f := &floatingIPs{fixed: map[netip.Addr]bool{}, lbs: map[string]netip.Addr{}}
	for _, n := range nets {
		for _, port := range n.ports {
			switch {
			case port.lb:
				f.lbs[port.instance] = port.fip
			case port.fip.IsValid():
				f.fixed[port.fip] = true
			}
		}
	}
	return f
}

// A flag read from lbActiveFile after an agent restart may be stale: while
// the agent was down, keepalived may have died or the host lost its link,
// and the VIP gone to the other host. Until the data plane confirms it
// with SetLBActive, such a flag keeps a proxy ARP entry the host still
// has, but neither adds one nor sends a gratuitous ARP: a host that lost
// the VIP must not draw the floating IP's traffic back from the one that
// holds it.

// SetLBActive records whether the VIP of the load balancer lbUID is on
// this host (keepalived is master here) and announces its floating IP on
// the underlay accordingly: on activation the host answers ARP for it and
// sends a gratuitous ARP, so that outside clients switch to this host at
// once; on deactivation it stops answering. The flag holds across Apply
// calls and plane restarts until it is changed or the load balancer's
// port leaves the host's spec. Before the plane's first Apply it is only
// recorded; that Apply announces it.
func (p *Plane) SetLBActive(lbUID string, active bool) error {
	p.arpMu.Lock()
	defer p.arpMu.Unlock()
	if err := p.loadLBActive(); err != nil {
		return fmt.Errorf("netplane: %w", err)
	}
	if active {
		p.lbActive[lbUID] = true
	} else {
		delete(p.lbActive, lbUID)
	}
	if p.lbConfirmed == nil {
		p.lbConfirmed = map[string]bool{}
	}
	p.lbConfirmed[lbUID] = true
	if err := p.saveLBActive(); err != nil {
		return fmt.Errorf("netplane: %w", err)
	}
	if p.fips == nil || !p.fips.lbs[lbUID].IsValid() {
		return nil
	}
	h, err := p.openHost()
	if err != nil {
		return err
	}
	defer h.close()
	if _, err := p.applyProxyARP(h, p.proxyARPWanted(), p.proxyARPKept()); err != nil {
		return fmt.Errorf("netplane: load balancer %s: %w", lbUID, err)
	}
	if !active {
		return nil
	}
	fip := p.fips.lbs[lbUID]
	if err := p.sendGratuitousARP(h, fip); err != nil {
		return fmt.Errorf("netplane: load balancer %s: %w", lbUID, err)
	}
	p.log.Info("load balancer floating IP announced", "lb", lbUID, "floatingIP", fip)
	return nil
}

// announceFloatingIPs makes the proxy ARP entries match f and the
// recorded activity of load balancers, forgetting the activity of load
// balancers no longer in f. A load balancer's floating IP that gets its
// entry now is announced with gratuitous ARP.
func (p *Plane) announceFloatingIPs(h *hostNS, f *floatingIPs) error {
	p.arpMu.Lock()
	defer p.arpMu.Unlock()
	if err := p.loadLBActive(); err != nil {
		return err
	}
	pruned := false
	for uid := range p.lbActive {
		if _, ok := f.lbs[uid]; !ok {
			delete(p.lbActive, uid)
			pruned = true
		}
	}
	for uid := range p.lbConfirmed {
		if _, ok := f.lbs[uid]; !ok {
			delete(p.lbConfirmed, uid)
		}
	}
	if pruned {
		if err := p.saveLBActive(); err != nil {
			return err
		}
	}
	p.fips = f
	added, err := p.applyProxyARP(h, p.proxyARPWanted(), p.proxyARPKept())
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for uid, fip := range f.lbs {
		if fip.IsValid() && p.lbActive[uid] && slices.Contains(added, fip) {
			if err := p.sendGratuitousARP(h, fip); err != nil {
				errs = append(errs, fmt.Errorf("load balancer %s: %w", uid, err))
			}
		}
	}
	return errors.Join(errs...)
}

// proxyARPWanted returns the floating IPs this host answers ARP for: the
// instances' and those of the load balancers confirmed active. The caller
// holds arpMu.
func (p *Plane) proxyARPWanted() map[netip.Addr]bool {
	want := map[netip.Addr]bool{}
	if p.fips == nil {
		return want
	}
	for a := range p.fips.fixed {
		want[a] = true
	}
	for uid, fip := range p.fips.lbs {
		if fip.IsValid() && p.lbActive[uid] && p.lbConfirmed[uid] {
			want[fip] = true
		}
	}
	return want
}

// proxyARPKept returns the floating IPs of load balancers recorded active
// but not confirmed since the plane was made: their proxy ARP entries are
// kept if the host has them, not added. The caller holds arpMu.
func (p *Plane) proxyARPKept() map[netip.Addr]bool {
	keep := map[netip.Addr]bool{}
	if p.fips == nil {
		return keep
	}
	for uid, fip := range p.fips.lbs {
		if fip.IsValid() && p.lbActive[uid] && !p.lbConfirmed[uid] {
			keep[fip] = true
		}
	}
	return keep
}

// loadLBActive reads lbActiveFile the first time. The caller holds arpMu.
func (p *Plane) loadLBActive() error {
	if p.lbActive != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(p.cfg.StateDir, lbActiveFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read load balancer activity: %w", err)
	}
	p.lbActive = map[string]bool{}
	for _, uid := range strings.Fields(string(b)) {
		p.lbActive[uid] = true
	}
	return nil
}

// saveLBActive writes lbActiveFile. The caller holds arpMu.
func (p *Plane) saveLBActive() error {
	uids := make([]string, 0, len(p.lbActive))
	for uid := range p.lbActive {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	if err := os.MkdirAll(p.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return writeFileAtomic(filepath.Join(p.cfg.StateDir, lbActiveFile), strings.Join(uids, "\n"))
}
