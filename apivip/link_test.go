package apivip

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestParseVIP(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"10.0.0.100/24", true},
		{"192.168.1.5/32", true},
		{"10.0.0.100", false},
		{"10.0.0.100/0", false},
		{"fd00::1/64", false},
		{"bogus/24", false},
	} {
		_, err := ParseVIP(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseVIP(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestARPPacket(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	ip := netip.MustParseAddr("10.1.2.3")
	for _, tc := range []struct {
		op        uint16
		targetMAC []byte
	}{
		{arpRequest, make([]byte, 6)},
		{arpReply, mac},
	} {
		b := arpPacket(tc.op, mac, ip)
		want := append([]byte{0, 1, 8, 0, 6, 4, 0, byte(tc.op)}, mac...)
		want = append(want, 10, 1, 2, 3)
		want = append(want, tc.targetMAC...)
		want = append(want, 10, 1, 2, 3)
		if !bytes.Equal(b, want) {
			t.Errorf("op %d: packet % x, want % x", tc.op, b, want)
		}
	}
}
