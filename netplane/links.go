package netplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// nsLink is a netlink handle bound to one namespace, with the namespace's
// file descriptor for moving devices into it.
type nsLink struct {
	*netlink.Handle
	ns vnetns.NsHandle
}

// openNS opens a namespace by path (the current one when empty).
func openNS(path string) (*nsLink, error) {
	var ns vnetns.NsHandle
	var err error
	if path == "" {
		ns, err = vnetns.Get()
	} else {
		ns, err = vnetns.GetFromPath(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open netns %q: %w", path, err)
	}
	// Links, addresses, routes and neighbours only: without families the
	// handle also opens xfrm and netfilter sockets, and a kernel whose
	// xfrm_user is a module not loaded (a fresh Debian VM) refuses those.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink in %q: %w", path, err)
	}
	return &nsLink{Handle: h, ns: ns}, nil
}

func (l *nsLink) close() {
	l.Handle.Close()
	l.ns.Close()
}

// retry repeats a netlink dump the kernel reported as interrupted.
func retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 5 {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// link returns the named device, or nil when there is none.
func (l *nsLink) link(name string) (netlink.Link, error) {
	lk, err := l.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	return lk, nil
}

// up sets MTU (when mtu > 0) and brings a device up, changing only what
// differs.
func (l *nsLink) up(lk netlink.Link, mtu int) error {
	a := lk.Attrs()
	if mtu > 0 && a.MTU != mtu {
		if err := l.LinkSetMTU(lk, mtu); err != nil {
			return fmt.Errorf("set mtu of %s: %w", a.Name, err)
		}
	}
	if a.Flags&net.FlagUp == 0 {
		if err := l.LinkSetUp(lk); err != nil {
			return fmt.Errorf("bring up %s: %w", a.Name, err)
		}
	}
	return nil
}

// setMaster attaches a device to a bridge unless it already is.
func (l *nsLink) setMaster(lk, br netlink.Link) error {
	if lk.Attrs().MasterIndex == br.Attrs().Index {
		return nil
	}
	if err := l.LinkSetMaster(lk, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", lk.Attrs().Name, br.Attrs().Name, err)
	}
	return nil
}

// setMAC changes a device's MAC unless it already has it.
func (l *nsLink) setMAC(lk netlink.Link, mac net.HardwareAddr) error {
	if lk.Attrs().HardwareAddr.String() == mac.String() {
		return nil
	}
	if err := l.LinkSetHardwareAddr(lk, mac); err != nil {
		return fmt.Errorf("set mac of %s: %w", lk.Attrs().Name, err)
	}
	return nil
}

// setAddr makes want the device's only IPv4 address, but for addresses in
// keep, which are left as they are (a load balancer's VIP, which
// keepalived adds and removes).
func (l *nsLink) setAddr(lk netlink.Link, want netip.Prefix, keep ...netip.Addr) error {
	addrs, err := retry(func() ([]netlink.Addr, error) { return l.AddrList(lk, unix.AF_INET) })
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", lk.Attrs().Name, err)
	}
	have := false
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if ok && p == want {
			have = true
			continue
		}
		if ok && slices.Contains(keep, p.Addr()) {
			continue
		}
		if err := l.AddrDel(lk, &a); err != nil {
			return fmt.Errorf("remove address %s of %s: %w", a.IPNet, lk.Attrs().Name, err)
		}
	}
	if have {
		return nil
	}
	a := &netlink.Addr{IPNet: ipNet(want)}
	if err := l.AddrAdd(lk, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", want, lk.Attrs().Name, err)
	}
	return nil
}

// defaultRoute makes gw on lk the default route, unless it already is.
func (l *nsLink) defaultRoute(lk netlink.Link, gw netip.Addr) error {
	routes, err := retry(func() ([]netlink.Route, error) { return l.RouteList(nil, unix.AF_INET) })
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if isDefault(r.Dst) && r.LinkIndex == lk.Attrs().Index && r.Gw.Equal(net.IP(gw.AsSlice())) {
			return nil
		}
	}
	err = l.RouteReplace(&netlink.Route{
		LinkIndex: lk.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw:        net.IP(gw.AsSlice()),
	})
	if err != nil {
		return fmt.Errorf("default route via %s: %w", gw, err)
	}
	return nil
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// hostNS is the host namespace and its underlay device.
type hostNS struct {
	*nsLink
	underlay netlink.Link
	addr     netip.Addr
}

// openHost opens the host namespace and finds the underlay device: the one
// holding the underlay address.
func (p *Plane) openHost() (*hostNS, error) {
	l, err := openNS(p.cfg.HostNetNS)
	if err != nil {
		return nil, fmt.Errorf("netplane: %w", err)
	}
	addrs, err := retry(func() ([]netlink.Addr, error) { return l.AddrList(nil, unix.AF_INET) })
	if err != nil {
		l.close()
		return nil, fmt.Errorf("netplane: list host addresses: %w", err)
	}
	for _, a := range addrs {
		if pfx, ok := prefixOf(a.IPNet); ok && pfx.Addr() == p.underlay {
			lk, err := l.LinkByIndex(a.LinkIndex)
			if err != nil {
				l.close()
				return nil, fmt.Errorf("netplane: underlay device: %w", err)
			}
			return &hostNS{nsLink: l, underlay: lk, addr: p.underlay}, nil
		}
	}
	l.close()
	return nil, fmt.Errorf("netplane: no device holds the underlay address %s", p.underlay)
}

// overlayMTU is the MTU inside the overlay: the underlay's less the VXLAN
// encapsulation.
func (h *hostNS) overlayMTU() int {
	return h.underlay.Attrs().MTU - vxlanOverhead
}

// ownedHostDevice matches the host devices ouro creates.
var ownedHostDevice = regexp.MustCompile(`^our[tx]([0-9]+)$`)

// removeStaleDevices deletes host transits and VXLAN devices of networks
// not wanted. VXLAN devices of wanted networks are only ever in the host
// namespace briefly; one found there is left for ensureRouter.
func (h *hostNS) removeStaleDevices(wantVNI map[int]bool) error {
	links, err := retry(h.LinkList)
	if err != nil {
		return fmt.Errorf("list host devices: %w", err)
	}
	var errs []error
	for _, lk := range links {
		m := ownedHostDevice.FindStringSubmatch(lk.Attrs().Name)
		if m == nil {
			continue
		}
		if vni, _ := strconv.Atoi(m[1]); wantVNI[vni] {
			continue
		}
		if err := h.LinkDel(lk); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", lk.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// deleteNS deletes the devices inside a namespace (so that veth peers and
// VXLAN sockets go at once, even if a process still holds the namespace)
// and then the namespace's name.
func deleteNS(path string) error {
	if netns.IsNamespace(path) {
		l, err := openNS(path)
		if err != nil {
			return err
		}
		links, err := retry(l.LinkList)
		if err == nil {
			for _, lk := range links {
				if lk.Attrs().Name != "lo" {
					_ = l.LinkDel(lk)
				}
			}
		}
		l.close()
	}
	return netns.Delete(path)
}
