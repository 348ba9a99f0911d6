// Package garp announces IPv4 addresses on Ethernet links with gratuitous
// ARP (RFC 5227's ARP Announcement), so that neighbours that have the
// address in their cache take the new MAC at once: a floating IP or a VIP
// that moved to another host, or a virtual address just put on a link.
package garp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Ethernet and ARP constants (RFC 826).
const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	// OpRequest and OpReply are the ARP operations.
	OpRequest = 1
	OpReply   = 2
	// FrameLen is an Ethernet frame with an IPv4 ARP packet, padded to the
	// 60 bytes of a minimum frame (without the FCS).
	FrameLen = 60
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Frames returns the Ethernet frames that announce that ip is at mac: a
// broadcast ARP request and a broadcast ARP reply, each with ip as both
// sender and target address (the request is the RFC 5227 announcement;
// the reply, whose target MAC is the sender's, is for neighbours that
// heed only replies).
func Frames(mac net.HardwareAddr, ip netip.Addr) [][]byte {
	frame := func(op uint16, tha net.HardwareAddr) []byte {
		b := make([]byte, FrameLen)
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
		frame(OpRequest, make(net.HardwareAddr, 6)),
		frame(OpReply, mac),
	}
}

// Send broadcasts the frames of Frames on the link with index ifindex and
// Ethernet address mac, from a packet socket opened in the calling
// thread's network namespace (call it inside the namespace of the link).
func Send(ifindex int, mac net.HardwareAddr, ip netip.Addr) error {
	if len(mac) != 6 || !ip.Is4() {
		return fmt.Errorf("gratuitous ARP for %s: not IPv4 over Ethernet (link address %v)", ip, mac)
	}
	// Protocol 0: a socket that only sends, and receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("gratuitous ARP for %s: packet socket: %w", ip, err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(etherTypeARP), Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], broadcastMAC)
	for _, f := range Frames(mac, ip) {
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("gratuitous ARP for %s: %w", ip, err)
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
