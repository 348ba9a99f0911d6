package apivip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	// The socket is opened here, in this thread's network namespace, and
	// the repeats use it too.
	ann, err := newAnnouncer(l.Attrs().Index, l.Attrs().HardwareAddr, a.prefix.Addr())
	if err != nil {
		return fmt.Errorf("apivip: announce %s on %s: %w", a.prefix.Addr(), a.link, err)
	}
	if err := ann.send(); err != nil {
		ann.close()
		return fmt.Errorf("apivip: announce %s on %s: %w", a.prefix.Addr(), a.link, err)
	}
	go func() {
		defer ann.close()
		for range announceRepeats - 1 {
			time.Sleep(announceGap)
			ann.send()
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

// announcer sends gratuitous ARP requests and replies for ip from mac on
// one interface, so that peers update their neighbour entries.
type announcer struct {
	fd  int
	to  *unix.SockaddrLinklayer
	mac net.HardwareAddr
	ip  netip.Addr
}

// newAnnouncer opens a packet socket for the interface with index idx.
func newAnnouncer(idx int, mac net.HardwareAddr, ip netip.Addr) (*announcer, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("interface has no Ethernet address (%v)", mac)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: idx, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return &announcer{fd: fd, to: to, mac: mac, ip: ip}, nil
}

// send broadcasts one request and one reply.
func (a *announcer) send() error {
	for _, op := range []uint16{arpRequest, arpReply} {
		if err := unix.Sendto(a.fd, arpPacket(op, a.mac, a.ip), 0, a.to); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	return nil
}

func (a *announcer) close() { unix.Close(a.fd) }

// ARP operations.
const (
	arpRequest = 1
	arpReply   = 2
)

// arpPacket builds a gratuitous ARP packet (RFC 5227 announcement): the
// sender and target protocol address are both ip.
func arpPacket(op uint16, mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 28)
	b[0], b[1] = 0, 1 // hardware type Ethernet
	b[2], b[3] = 0x08, 0x00
	b[4], b[5] = 6, 4
	b[6], b[7] = byte(op>>8), byte(op)
	copy(b[8:14], mac)
	ip4 := ip.As4()
	copy(b[14:18], ip4[:])
	if op == arpReply {
		copy(b[18:24], mac)
	}
	copy(b[24:28], ip4[:])
	return b
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

var _ Address = (*LinkAddress)(nil)
