package netplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VPC legs. For two subnets X and Y of one VPC on a host, the router
// namespace of X holds ourv<vni of Y>, a veth whose other end,
// ourl<vni of X>, is a port of Y's bridge; X routes Y's prefix onto it.
// Routed packets thus enter Y's layer 2 on this host with the real
// destination MAC (learnt by ARP from the leg, whose MAC is unique to
// the host, unlike the gateway's) and cross Y's VXLAN to the host of the
// destination, whose bridge delivers them through the destination port's
// security groups with the source's real address.
const (
	legRouterPrefix = "ourv"
	legBridgePrefix = "ourl"
)

func legRouterName(vni int) string { return fmt.Sprintf("%s%d", legRouterPrefix, vni) }
func legBridgeName(vni int) string { return fmt.Sprintf("%s%d", legBridgePrefix, vni) }

// linkSiblings sets each network's siblings: the prefixes of the other
// subnets of its VPC in the spec. Two subnets of one VPC must not overlap.
func linkSiblings(nets []network) error {
	for i := range nets {
		n := &nets[i]
		if n.vpc == "" {
			continue
		}
		for j, m := range nets {
			if j == i || m.vpc != n.vpc {
				continue
			}
			if m.cidr.Overlaps(n.cidr) {
				return fmt.Errorf("networks %s and %s of VPC %s overlap", n.name, m.name, n.vpc)
			}
			n.siblings = append(n.siblings, sibling{vni: m.vni, cidr: m.cidr})
		}
	}
	return nil
}

// sibling is another subnet of a network's VPC on this host.
type sibling struct {
	vni  int
	cidr netip.Prefix
}

// siblingPrefixes returns the prefixes of a network's siblings.
func (n network) siblingPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, len(n.siblings))
	for i, s := range n.siblings {
		out[i] = s.cidr
	}
	return out
}

// applyLegs makes the legs from n's router namespace into the bridges of
// its siblings (skipping those in skip, whose namespace could not be set
// up), their routes, and removes the legs of siblings n no longer has.
func (p *Plane) applyLegs(n network, skip map[int]bool) error {
	r, err := openNS(p.routerNSPath(n.vni))
	if err != nil {
		return err
	}
	defer r.close()
	want := map[string]bool{}
	var errs []error
	for _, s := range n.siblings {
		if skip[s.vni] {
			continue
		}
		want[legRouterName(s.vni)] = true
		if err := p.ensureLeg(r, n, s); err != nil {
			errs = append(errs, fmt.Errorf("route to %s: %w", s.cidr, err))
		}
	}
	links, err := retry(r.LinkList)
	if err != nil {
		return fmt.Errorf("list router devices: %w", err)
	}
	for _, lk := range links {
		name := lk.Attrs().Name
		// Only router sides: deleting one deletes its bridge side in
		// the sibling's namespace, as deleting a namespace deletes the
		// legs into it.
		if strings.HasPrefix(name, legRouterPrefix) && !want[name] {
			if err := r.LinkDel(lk); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ensureLeg makes the veth from n's router namespace (r) to the bridge of
// sibling s, the source address of its ARP requests (n's transit address:
// never an address of s's prefix, and unique to no instance) and the
// route of s's prefix onto it.
func (p *Plane) ensureLeg(r *nsLink, n network, s sibling) error {
	sr, err := openNS(p.routerNSPath(s.vni))
	if err != nil {
		return err
	}
	defer sr.close()
	br, err := sr.link(bridgeName)
	if err != nil || br == nil {
		return fmt.Errorf("bridge of network %d: %v", s.vni, err)
	}
	rname, bname := legRouterName(s.vni), legBridgeName(n.vni)
	outer, err := r.link(rname)
	if err != nil {
		return err
	}
	inner, err := sr.link(bname)
	if err != nil {
		return err
	}
	paired := outer != nil && inner != nil &&
		outer.Attrs().ParentIndex == inner.Attrs().Index && inner.Attrs().ParentIndex == outer.Attrs().Index
	if !paired {
		for _, x := range []struct {
			l  *nsLink
			lk netlink.Link
		}{{r, outer}, {sr, inner}} {
			if x.lk != nil {
				if err := x.l.LinkDel(x.lk); err != nil {
					return fmt.Errorf("replace %s: %w", x.lk.Attrs().Name, err)
				}
			}
		}
		mtu := br.Attrs().MTU
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: rname, MTU: mtu},
			PeerName:      bname,
			PeerNamespace: netlink.NsFd(int(sr.ns)),
		}
		if err := r.LinkAdd(v); err != nil {
			return fmt.Errorf("create %s: %w", rname, err)
		}
		if outer, err = r.LinkByName(rname); err != nil {
			return fmt.Errorf("create %s: %w", rname, err)
		}
		if inner, err = sr.LinkByName(bname); err != nil {
			return fmt.Errorf("create %s: %w", bname, err)
		}
	}
	mtu := br.Attrs().MTU
	if err := sr.setMaster(inner, br); err != nil {
		return err
	}
	if err := sr.up(inner, mtu); err != nil {
		return err
	}
	if err := r.setAddr(outer, netip.PrefixFrom(n.transitR.Addr(), 32)); err != nil {
		return err
	}
	if err := r.up(outer, mtu); err != nil {
		return err
	}
	return r.prefixRoute(outer, s.cidr)
}

// prefixRoute makes dst a route on lk (scope link), unless it already is.
func (l *nsLink) prefixRoute(lk netlink.Link, dst netip.Prefix) error {
	routes, err := retry(func() ([]netlink.Route, error) { return l.RouteList(lk, unix.AF_INET) })
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, rt := range routes {
		if p, ok := prefixOf(rt.Dst); ok && p == dst && rt.Gw == nil {
			return nil
		}
	}
	err = l.RouteReplace(&netlink.Route{
		LinkIndex: lk.Attrs().Index, Dst: ipNet(dst), Scope: netlink.SCOPE_LINK,
	})
	if err != nil {
		return fmt.Errorf("route %s dev %s: %w", dst, lk.Attrs().Name, err)
	}
	return nil
}
