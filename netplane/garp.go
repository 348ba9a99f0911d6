package netplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// Ethernet and ARP constants (RFC 826).
const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	arpRequest    = 1
	arpReply      = 2
	// arpFrameLen is an Ethernet frame with an IPv4 ARP packet, padded to
	// the 60 bytes of a minimum frame (without the FCS).
	arpFrameLen = 60
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// gratuitousARP returns the frames that announce that ip is at mac: a
// broadcast ARP request and a broadcast ARP reply, each with ip as both
// sender and target address (the request is RFC 5227's ARP Announcement;
// the reply is for neighbours that heed only replies). A Linux neighbour
// that has ip in its cache takes the new MAC at once.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) [][]byte {
	frame := func(op uint16, tha net.HardwareAddr) []byte {
		b := make([]byte, arpFrameLen)
		copy(b[0:6], broadcastMAC)
		copy(b[6:12], mac)
		binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
		a := b[14:]
		binary.BigEndian.PutUint16(a[0:2], 1) // hardware: Ethernet
		binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
		a[4], a[5] = 6, 4
		binary.BigEndian.PutUint16(a[6:8], op)
		ip4 := ip.As4()
		copy(a[8:14], mac)
		copy(a[14:18], ip4[:])
		copy(a[18:24], tha)
		copy(a[24:28], ip4[:])
		return b
	}
	return [][]byte{
		frame(arpRequest, make(net.HardwareAddr, 6)),
		frame(arpReply, mac), // a gratuitous reply has target MAC = sender MAC
	}
}

// sendGratuitousARP announces ip at the underlay device's MAC on the
// underlay, from a packet socket opened in the host namespace.
func (p *Plane) sendGratuitousARP(h *hostNS, ip netip.Addr) error {
	a := h.underlay.Attrs()
	if len(a.HardwareAddr) != 6 || !ip.Is4() {
		return fmt.Errorf("gratuitous ARP for %s on %s: not IPv4 over Ethernet", ip, a.Name)
	}
	var fd int
	err := netns.Do(p.cfg.HostNetNS, func() error {
		// Protocol 0: a socket that only sends, and receives nothing.
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("gratuitous ARP for %s: packet socket: %w", ip, err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(etherTypeARP), Ifindex: a.Index, Halen: 6}
	copy(to.Addr[:], broadcastMAC)
	for _, f := range gratuitousARP(a.HardwareAddr, ip) {
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("gratuitous ARP for %s on %s: %w", ip, a.Name, err)
		}
	}
	return nil
}

// htons returns v in network byte order, as sockaddr_ll wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
