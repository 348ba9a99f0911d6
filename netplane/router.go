package netplane

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// router is an open router namespace with its bridge.
type router struct {
	*nsLink
	path   string // of the namespace
	bridge netlink.Link
	mtu    int
}

// ensureRouter creates or corrects a network's router namespace: loopback,
// sysctls, bridge with the gateway, VXLAN with its flood list, transit
// link and default route.
func (p *Plane) ensureRouter(h *hostNS, n network) (*router, error) {
	path := p.routerNSPath(n.vni)
	created, err := netns.Create(path)
	if err != nil {
		return nil, err
	}
	if created {
		p.log.Info("router namespace created", "vni", n.vni)
	}
	l, err := openNS(path)
	if err != nil {
		return nil, err
	}
	r := &router{nsLink: l, path: path, mtu: h.overlayMTU()}
	if err := r.setup(h, n, path); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *router) setup(h *hostNS, n network, path string) error {
	lo, err := r.link("lo")
	if err != nil || lo == nil {
		return fmt.Errorf("router loopback: %w", err)
	}
	if err := r.up(lo, 0); err != nil {
		return err
	}
	if err := r.ensureMetadataAddr(lo); err != nil {
		return err
	}
	for _, s := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		// Bridged IPv4 traverses the inet hooks (with conntrack), which
		// makes the security groups stateful. Per namespace since 5.3.
		{"net.bridge.bridge-nf-call-iptables", "1"},
		{"net.ipv6.conf.all.disable_ipv6", "1"},
	} {
		if err := netns.WriteSysctl(path, s[0], s[1]); err != nil {
			return err
		}
	}
	if err := r.ensureBridge(n); err != nil {
		return err
	}
	if err := r.ensureVXLAN(h, n); err != nil {
		return err
	}
	return r.ensureTransit(h, n)
}

func (r *router) ensureBridge(n network) error {
	br, err := r.link(bridgeName)
	if err != nil {
		return err
	}
	mac := GatewayMAC(n.vni)
	if br == nil {
		br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: r.mtu, HardwareAddr: mac}}
		if err := r.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge: %w", err)
		}
		if br, err = r.LinkByName(bridgeName); err != nil {
			return fmt.Errorf("create bridge: %w", err)
		}
	}
	if err := r.setMAC(br, mac); err != nil {
		return err
	}
	if err := r.setAddr(br, netip.PrefixFrom(n.gateway, n.cidr.Bits())); err != nil {
		return err
	}
	if err := r.up(br, r.mtu); err != nil {
		return err
	}
	r.bridge = br
	return nil
}

// ensureVXLAN makes the VXLAN device: created in the host namespace, so
// that its UDP socket lives on the underlay, then moved into the router
// namespace. A device left in the host namespace by a crash is replaced.
func (r *router) ensureVXLAN(h *hostNS, n network) error {
	name := vxlanName(n.vni)
	local := net.IP(h.underlayAddr().AsSlice())
	lk, err := r.link(name)
	if err != nil {
		return err
	}
	if vx, ok := lk.(*netlink.Vxlan); lk != nil && (!ok || vx.VxlanId != n.vni || !vx.SrcAddr.Equal(local) || vx.Port != vxlanPort) {
		// Wrong identity (the underlay address changed): recreate.
		if err := r.LinkDel(lk); err != nil {
			return fmt.Errorf("replace %s: %w", name, err)
		}
		lk = nil
	}
	if lk == nil {
		if old, err := h.link(name); err != nil {
			return err
		} else if old != nil {
			if err := h.LinkDel(old); err != nil {
				return fmt.Errorf("delete leftover %s: %w", name, err)
			}
		}
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: r.mtu},
			VxlanId:   n.vni, SrcAddr: local, Port: vxlanPort, Learning: true,
		}
		if err := h.LinkAdd(vx); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		created, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if err := h.LinkSetNsFd(created, int(r.ns)); err != nil {
			return fmt.Errorf("move %s into router namespace: %w", name, err)
		}
		if lk, err = r.LinkByName(name); err != nil {
			return fmt.Errorf("find %s in router namespace: %w", name, err)
		}
	}
	if err := r.setMaster(lk, r.bridge); err != nil {
		return err
	}
	if err := r.up(lk, r.mtu); err != nil {
		return err
	}
	return r.ensureFlood(lk, n.peers)
}

// ensureFlood makes the all-zeros FDB entries of the VXLAN device point at
// exactly the peers, and forgets MACs learnt behind hosts that are no
// longer peers (an instance that moved is reachable at once, not after
// the FDB ageing time).
func (r *router) ensureFlood(vx netlink.Link, peers []netip.Addr) error {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	want := map[netip.Addr]bool{}
	for _, p := range peers {
		want[p] = true
	}
	missing := maps.Clone(want)
	fdb, err := retry(func() ([]netlink.Neigh, error) { return r.NeighList(vx.Attrs().Index, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("list fdb: %w", err)
	}
	for _, e := range fdb {
		if e.IP == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(e.IP)
		ip = ip.Unmap()
		flood := e.HardwareAddr.String() == zero.String()
		if want[ip] {
			if flood {
				delete(missing, ip)
			}
			continue
		}
		if !flood && e.State&netlink.NUD_PERMANENT != 0 {
			continue // not ours
		}
		if err := r.NeighDel(&e); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove fdb entry %s dst %s: %w", e.HardwareAddr, ip, err)
		}
	}
	for ip := range missing {
		err := r.NeighAppend(&netlink.Neigh{
			LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, HardwareAddr: zero, IP: net.IP(ip.AsSlice()),
		})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add flood entry %s: %w", ip, err)
		}
	}
	return nil
}

// ensureTransit makes the veth between host and router namespace, its
// addresses and the router's default route.
func (r *router) ensureTransit(h *hostNS, n network) error {
	name := transitName(n.vni)
	hl, err := h.link(name)
	if err != nil {
		return err
	}
	rl, err := r.link(routerTransit)
	if err != nil {
		return err
	}
	if hl != nil && (rl == nil || hl.Attrs().ParentIndex != rl.Attrs().Index) {
		if err := h.LinkDel(hl); err != nil {
			return fmt.Errorf("replace %s: %w", name, err)
		}
		hl = nil
	}
	if hl == nil {
		if rl != nil {
			if err := r.LinkDel(rl); err != nil {
				return fmt.Errorf("replace router transit: %w", err)
			}
		}
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: name},
			PeerName:      routerTransit,
			PeerNamespace: netlink.NsFd(int(r.ns)),
		}
		if err := h.LinkAdd(v); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if hl, err = h.LinkByName(name); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if rl, err = r.LinkByName(routerTransit); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	if err := h.setAddr(hl, n.transitH); err != nil {
		return err
	}
	if err := h.up(hl, 0); err != nil {
		return err
	}
	if err := r.setAddr(rl, n.transitR); err != nil {
		return err
	}
	if err := r.up(rl, 0); err != nil {
		return err
	}
	return r.defaultRoute(rl, n.transitH.Addr())
}

// ensurePort makes an instance's namespace and its veth to the bridge. A
// load balancer's port is made the same way, in a namespace named after
// the load balancer's UID, where HAProxy and keepalived run; its VIP, when
// keepalived has put it on the device, is left there.
func (p *Plane) ensurePort(r *router, n network, port port) error {
	path := p.NetNSPath(port.instance)
	if _, err := netns.Create(path); err != nil {
		return err
	}
	il, err := openNS(path)
	if err != nil {
		return err
	}
	defer il.close()
	lo, err := il.link("lo")
	if err != nil || lo == nil {
		return fmt.Errorf("instance loopback: %w", err)
	}
	if err := il.up(lo, 0); err != nil {
		return err
	}
	outer, err := r.link(port.dev)
	if err != nil {
		return err
	}
	inner, err := il.link(port.ifname)
	if err != nil {
		return err
	}
	paired := outer != nil && inner != nil &&
		outer.Attrs().ParentIndex == inner.Attrs().Index && inner.Attrs().ParentIndex == outer.Attrs().Index
	if !paired {
		for _, x := range []struct {
			l  *nsLink
			lk netlink.Link
		}{{r.nsLink, outer}, {il, inner}} {
			if x.lk != nil {
				if err := x.l.LinkDel(x.lk); err != nil {
					return fmt.Errorf("replace %s: %w", x.lk.Attrs().Name, err)
				}
			}
		}
		v := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: port.dev, MTU: r.mtu},
			PeerName:         port.ifname,
			PeerNamespace:    netlink.NsFd(int(il.ns)),
			PeerHardwareAddr: port.mac,
		}
		if err := r.LinkAdd(v); err != nil {
			return fmt.Errorf("create %s: %w", port.dev, err)
		}
		if outer, err = r.LinkByName(port.dev); err != nil {
			return fmt.Errorf("create %s: %w", port.dev, err)
		}
		if inner, err = il.LinkByName(port.ifname); err != nil {
			return fmt.Errorf("create %s: %w", port.ifname, err)
		}
	}
	if err := r.setMaster(outer, r.bridge); err != nil {
		return err
	}
	if err := r.up(outer, r.mtu); err != nil {
		return err
	}
	if err := il.setMAC(inner, port.mac); err != nil {
		return err
	}
	var keep []netip.Addr
	if port.vip.IsValid() {
		keep = append(keep, port.vip)
	}
	if err := il.setAddr(inner, netip.PrefixFrom(port.ip, n.cidr.Bits()), keep...); err != nil {
		return err
	}
	if err := il.up(inner, r.mtu); err != nil {
		return err
	}
	if port.ifname == "eth0" {
		return il.defaultRoute(inner, n.gateway)
	}
	return nil
}

// removeStalePorts deletes the bridge ports of instances no longer on the
// network; deleting one end of a veth deletes the other, and deleting a
// TAP detaches QEMU from the network.
func (r *router) removeStalePorts(n network) error {
	want := map[string]bool{}
	for _, port := range n.ports {
		want[port.dev] = true
	}
	links, err := retry(r.LinkList)
	if err != nil {
		return fmt.Errorf("list router devices: %w", err)
	}
	var errs []error
	for _, lk := range links {
		name := lk.Attrs().Name
		if strings.HasPrefix(name, portPrefix) && !want[name] {
			if err := r.LinkDel(lk); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (h *hostNS) underlayAddr() netip.Addr {
	return h.addr
}
