package ipam

import (
	"net/netip"
	"testing"
)

func TestFreeFrom(t *testing.T) {
	a := netip.MustParseAddr
	first, last := a("10.0.0.1"), a("10.0.0.6")
	used := func(ips ...string) map[string]bool {
		m := map[string]bool{}
		for _, ip := range ips {
			m[ip] = true
		}
		return m
	}
	tests := []struct {
		name   string
		offset uint32
		used   map[string]bool
		skip   []netip.Addr
		want   string // "" for none
	}{
		{"lowest", 0, used(), nil, "10.0.0.1"},
		{"from offset", 3, used(), nil, "10.0.0.4"},
		{"offset wraps", 9, used(), nil, "10.0.0.4"},
		{"skips used", 3, used("10.0.0.4", "10.0.0.5"), nil, "10.0.0.6"},
		{"wraps past used", 4, used("10.0.0.5", "10.0.0.6"), nil, "10.0.0.1"},
		{"skips gateway", 0, used(), []netip.Addr{a("10.0.0.1")}, "10.0.0.2"},
		{"full", 2, used("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"), []netip.Addr{a("10.0.0.5")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := freeFrom(first, last, tt.offset, tt.used, tt.skip...)
			if tt.want == "" {
				if ok {
					t.Fatalf("freeFrom = %s, want none", got)
				}
				return
			}
			if !ok || got.String() != tt.want {
				t.Fatalf("freeFrom = %s, %v; want %s", got, ok, tt.want)
			}
		})
	}
	if n := hostCount(first, last); n != 6 {
		t.Errorf("hostCount = %d, want 6", n)
	}
}

func TestHostAddr(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.0/29")
	tests := []struct {
		addr string
		want bool
	}{
		{"10.0.0.0", false}, {"10.0.0.1", true}, {"10.0.0.6", true}, {"10.0.0.7", false}, {"10.0.0.8", false},
	}
	for _, tt := range tests {
		if got := HostAddr(p, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("HostAddr(%s, %s) = %v, want %v", p, tt.addr, got, tt.want)
		}
	}
}
