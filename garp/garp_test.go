package garp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestFrames(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	ip := netip.MustParseAddr("10.99.0.100")
	frames := Frames(mac, ip)
	if len(frames) != 2 {
		t.Fatalf("got %d frames, want a request and a reply", len(frames))
	}
	zero := make([]byte, 6)
	tests := []struct {
		name string
		op   byte
		tha  []byte
	}{
		{"request", OpRequest, zero},
		{"reply", OpReply, mac},
	}
	for i, tt := range tests {
		f := frames[i]
		check := func(what string, got, want []byte) {
			t.Helper()
			if !bytes.Equal(got, want) {
				t.Errorf("%s: %s = % x, want % x", tt.name, what, got, want)
			}
		}
		if len(f) != 60 {
			t.Errorf("%s: %d bytes, want 60", tt.name, len(f))
			continue
		}
		check("destination", f[0:6], broadcastMAC)
		check("source", f[6:12], mac)
		check("ethertype", f[12:14], []byte{0x08, 0x06})
		check("htype, ptype, hlen, plen", f[14:20], []byte{0, 1, 0x08, 0x00, 6, 4})
		check("op", f[20:22], []byte{0, tt.op})
		check("sender MAC", f[22:28], mac)
		check("sender IP", f[28:32], []byte{10, 99, 0, 100})
		check("target MAC", f[32:38], tt.tha)
		check("target IP", f[38:42], []byte{10, 99, 0, 100})
		check("padding", f[42:], make([]byte, 18))
	}
}
