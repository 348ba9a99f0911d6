package netplane

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// proxyARPFile lists the floating IPs this plane answers ARP for on the
// underlay, so that stale entries can be told from an operator's own.
const proxyARPFile = "proxy-arp"

// applyFloatingIPs routes every floating IP to the transit of the network
// holding it and answers ARP for it on the underlay (a load balancer's
// only while its VIP is on this host, see SetLBActive); routes and proxy
// entries of floating IPs no longer here are removed.
func (p *Plane) applyFloatingIPs(h *hostNS, nets []network) error {
	want := map[netip.Addr]network{}
	for _, n := range nets {
		for _, port := range n.ports {
			if port.fip.IsValid() {
				want[port.fip] = n
			}
		}
	}
	var errs []error
	// Routes: FIP/32 via the router end of the transit.
	transits := map[int]bool{}
	for _, n := range nets {
		lk, err := h.link(transitName(n.vni))
		if err != nil || lk == nil {
			continue // the network failed to apply; its error is reported
		}
		transits[lk.Attrs().Index] = true
		routes, err := retry(func() ([]netlink.Route, error) { return h.RouteList(lk, unix.AF_INET) })
		if err != nil {
			errs = append(errs, fmt.Errorf("list routes of %s: %w", lk.Attrs().Name, err))
			continue
		}
		for _, r := range routes {
			pfx, ok := prefixOf(r.Dst)
			if !ok || pfx.Bits() != 32 || r.Gw == nil {
				continue
			}
			if wn, ok := want[pfx.Addr()]; ok && wn.vni == n.vni {
				continue
			}
			if err := h.RouteDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("remove route %s: %w", pfx, err))
			}
		}
	}
	for fip, n := range want {
		lk, err := h.link(transitName(n.vni))
		if err != nil || lk == nil {
			continue
		}
		err = h.RouteReplace(&netlink.Route{
			LinkIndex: lk.Attrs().Index,
			Dst:       ipNet(netip.PrefixFrom(fip, 32)),
			Gw:        net.IP(n.transitR.Addr().AsSlice()),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("route floating IP %s: %w", fip, err))
		}
	}
	if err := p.announceFloatingIPs(h, newFloatingIPs(nets)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyProxyARP adds proxy neighbour entries for the wanted floating IPs
// and removes those it added before that are neither wanted nor to keep
// (kept entries are left as they are, present or not); it returns the
// addresses it added. The list file is widened before adding and
// narrowed after removing, so that a crash never forgets an entry. The
// caller holds arpMu.
func (p *Plane) applyProxyARP(h *hostNS, want, keep map[netip.Addr]bool) (added []netip.Addr, err error) {
	path := filepath.Join(p.cfg.StateDir, proxyARPFile)
	prev := map[netip.Addr]bool{}
	if b, err := os.ReadFile(path); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if a, err := netip.ParseAddr(f); err == nil {
				prev[a] = true
			}
		}
	}
	union := map[netip.Addr]bool{}
	for a := range prev {
		union[a] = true
	}
	for a := range want {
		union[a] = true
	}
	if err := writeAddrs(path, union); err != nil {
		return nil, err
	}
	idx := h.underlay.Attrs().Index
	have := map[netip.Addr]bool{}
	entries, err := retry(func() ([]netlink.Neigh, error) { return h.NeighProxyList(idx, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("list proxy ARP: %w", err)
	}
	for _, e := range entries {
		if a, ok := netip.AddrFromSlice(e.IP); ok {
			have[a.Unmap()] = true
		}
	}
	var errs []error
	for a := range want {
		if have[a] {
			continue
		}
		err := h.NeighAdd(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, Flags: netlink.NTF_PROXY, IP: net.IP(a.AsSlice())})
		switch {
		case err == nil:
			added = append(added, a)
		case !errors.Is(err, unix.EEXIST):
			errs = append(errs, fmt.Errorf("proxy ARP for %s: %w", a, err))
		}
	}
	for a := range prev {
		if want[a] || keep[a] || !have[a] {
			continue
		}
		err := h.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, Flags: netlink.NTF_PROXY, IP: net.IP(a.AsSlice())})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove proxy ARP for %s: %w", a, err))
		}
	}
	if len(errs) > 0 {
		return added, errors.Join(errs...)
	}
	left := maps.Clone(want)
	for a := range keep {
		if have[a] && prev[a] {
			left[a] = true
		}
	}
	return added, writeAddrs(path, left)
}

func writeAddrs(path string, set map[netip.Addr]bool) error {
	var lines []string
	for a := range set {
		lines = append(lines, a.String())
	}
	slices.Sort(lines)
	return writeFileAtomic(path, strings.Join(lines, "\n"))
}

// writeFileAtomic replaces the file at path with data, unless it has it.
func writeFileAtomic(path, data string) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == data {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
