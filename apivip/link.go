package apivip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/garp"
)

// announceRepeats and announceGap: gratuitous ARP is sent a few times, as
// keepalived does, in case the first frame is lost.
const (
	announceRepeats = 3
	announceGap     = 200 * time.Millisecond
)

// LinkAddress is an Address on a Linux interface, added with netlink and
// announced with gratuitous ARP.
type LinkAddress struct {
	prefix netip.Prefix
	link   string
}

// NewLinkAddress returns the address vip (ADDR/PREFIX) on interface link;
// an empty link picks the interface whose subnet contains vip.
func NewLinkAddress(vip, link string) (*LinkAddress, error) {
	p, err := ParseVIP(vip)
	if err != nil {
		return nil, err
	}
	if link == "" {
		if link, err = InterfaceFor(p.Addr()); err != nil {
			return nil, err
		}
	}
	if _, err := netlink.LinkByName(link); err != nil {
		return nil, fmt.Errorf("apivip: interface %q: %w", link, err)
	}
	return &LinkAddress{prefix: p, link: link}, nil
}

// ParseVIP parses ADDR/PREFIX, an IPv4 address with its subnet's length.
func ParseVIP(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("apivip: %q is not an IPv4 ADDR/PREFIX such as 10.0.0.100/24", s)
	}
	return p, nil
}

// Interface returns the interface name.
func (a *LinkAddress) Interface() string { return a.link }

// IP returns the address.
func (a *LinkAddress) IP() netip.Addr { return a.prefix.Addr() }

func (a *LinkAddress) netlinkAddr() *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.prefix.Addr().AsSlice(), Mask: net.CIDRMask(a.prefix.Bits(), 32)}}
}

// present reports whether the address is on link l.
func (a *LinkAddress) present(l netlink.Link) (bool, error) {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("apivip: addresses of %s: %w", a.link, err)
	}
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok && ip == a.prefix.Addr() {
			return true, nil
		}
	}
	return false, nil
}

// Add puts the address on the interface with valid and preferred
// lifetimes of lifetime, and, when it was not there, sends gratuitous ARP
// now and twice more in the background.
func (a *LinkAddress) Add(lifetime time.Duration) error {
	l, err := netlink.LinkByName(a.link)
	if err != nil {
		return fmt.Errorf("apivip: interface %q: %w", a.link, err)
	}
	had, err := a.present(l)
	if err != nil {
		return err
	}
	addr := a.netlinkAddr()
	secs := max(int(lifetime/time.Second), 1)
	addr.ValidLft, addr.PreferedLft = secs, secs
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("apivip: add %s to %s: %w", a.prefix, a.link, err)
	}
	if had {
		return nil
	}
	idx, mac, ip := l.Attrs().Index, l.Attrs().HardwareAddr, a.prefix.Addr()
	if err := garp.Send(idx, mac, ip); err != nil {
		return fmt.Errorf("apivip: announce %s on %s: %w", ip, a.link, err)
	}
	go func() {
		for range announceRepeats - 1 {
			time.Sleep(announceGap)
			_ = garp.Send(idx, mac, ip)
		}
	}()
	return nil
}

// Remove takes the address off the interface.
func (a *LinkAddress) Remove() error {
	l, err := netlink.LinkByName(a.link)
	if err != nil {
		return fmt.Errorf("apivip: interface %q: %w", a.link, err)
	}
	err = netlink.AddrDel(l, a.netlinkAddr())
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("apivip: remove %s from %s: %w", a.prefix, a.link, err)
	}
	return nil
}

// InterfaceFor returns the interface with an address whose subnet holds ip
// (other than ip itself).
func InterfaceFor(ip netip.Addr) (string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("apivip: list interfaces: %w", err)
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			own, ok := netip.AddrFromSlice(ad.IP.To4())
			if !ok || own == ip {
				continue
			}
			ones, _ := ad.Mask.Size()
			if netip.PrefixFrom(own, ones).Masked().Contains(ip) {
				return l.Attrs().Name, nil
			}
		}
	}
	return "", fmt.Errorf("apivip: no interface has a subnet holding %s; name one with --api-vip-interface", ip)
}

var _ Address = (*LinkAddress)(nil)
