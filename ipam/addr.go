package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// ParsePrefix4 parses a canonical IPv4 prefix with minBits to maxBits of
// prefix length; its errors name field.
func ParsePrefix4(field, s string, minBits, maxBits int) (netip.Prefix, error) {
	hint := fmt.Sprintf("use an IPv4 prefix from /%d to /%d with the host bits zero, such as 10.0.0.0/24", minBits, maxBits)
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, api.Invalid(field, hint, "%q is not an IPv4 prefix", truncate(s, 80))
	}
	if p.Bits() < minBits || p.Bits() > maxBits {
		return netip.Prefix{}, api.Invalid(field, hint, "prefix length /%d is out of range", p.Bits())
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, api.Invalid(field, fmt.Sprintf("use %s", m), "%s has host bits set", s)
	}
	return p, nil
}

// ParseAddr4 parses an IPv4 address; its error names field and gives
// hint.
func ParseAddr4(field, hint, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, api.Invalid(field, hint, "%q is not an IPv4 address", truncate(s, 80))
	}
	return a, nil
}

// HostAddr reports whether a is a host address of p: inside, and neither
// its network nor its broadcast address.
func HostAddr(p netip.Prefix, a netip.Addr) bool {
	return p.Contains(a) && a != p.Masked().Addr() && a != broadcast(p)
}

// broadcast returns the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// lowestFree returns the lowest address from first to last (inclusive)
// that is not used.
func lowestFree(first, last netip.Addr, used map[string]bool) (netip.Addr, bool) {
	for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		if !used[a.String()] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// freeFrom returns the first address that is neither used nor skipped,
// searching from the address offset places after first up to last and
// then wrapping around to first. Concurrent creates that start from
// different offsets rarely pick the same address.
func freeFrom(first, last netip.Addr, offset uint32, used map[string]bool, skip ...netip.Addr) (netip.Addr, bool) {
	f, l := addrUint(first), addrUint(last)
	if l < f {
		return netip.Addr{}, false
	}
	size := uint64(l-f) + 1
	for i := range size {
		a := uintAddr(f + uint32((uint64(offset)+i)%size))
		if !used[a.String()] && !slices.Contains(skip, a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// hostCount returns the number of addresses from first to last.
func hostCount(first, last netip.Addr) int {
	f, l := addrUint(first), addrUint(last)
	if l < f {
		return 0
	}
	return int(l-f) + 1
}

func addrUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// usedAddrs turns claims under prefix into a set of addresses.
func usedAddrs(claims map[string]string, prefix string) map[string]bool {
	used := make(map[string]bool, len(claims))
	for c := range claims {
		used[strings.TrimPrefix(c, prefix)] = true
	}
	return used
}

// macOf derives an interface's MAC from its IPv4 address: 0a:58 (locally
// administered, unicast) and the four address bytes.
func macOf(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// lowestUsed returns the lowest address of used. A create with an
// idempotency key on a full network claims it as a probe: the store
// answers a retried create from its idempotency record before it looks at
// claims, so a retry whose first attempt took the last address gets the
// first result, and any other create learns the address is taken.
func lowestUsed(used map[string]bool) (netip.Addr, bool) {
	var low netip.Addr
	for u := range used {
		if a, err := netip.ParseAddr(u); err == nil && (!low.IsValid() || a.Less(low)) {
			low = a
		}
	}
	return low, low.IsValid()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
