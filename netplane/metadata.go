package netplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
	"github.com/ouroboros-cloud/ouro/netplane/nft"
)

// metadataPrefix is the metadata service's address as it sits on the
// loopback of every router namespace. Instances reach it through their
// default route, the router's bridge: it is a local address of the router,
// so no NAT is involved and the service sees the instance's own address.
var metadataPrefix = netip.PrefixFrom(netip.MustParseAddr(nft.MetadataAddress), 32)

// ensureMetadataAddr adds the metadata address to the router's loopback
// unless it is there; the loopback's other addresses are left alone.
func (r *router) ensureMetadataAddr(lo netlink.Link) error {
	addrs, err := retry(func() ([]netlink.Addr, error) { return r.AddrList(lo, unix.AF_INET) })
	if err != nil {
		return fmt.Errorf("list addresses of lo: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p == metadataPrefix {
			return nil
		}
	}
	if err := r.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(metadataPrefix)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add metadata address to lo: %w", err)
	}
	return nil
}

// ListenMetadata opens a TCP listener on the metadata address and port
// inside the router namespace of the network with this VNI
// (which Apply must have made). The socket belongs to that namespace for
// good; it keeps the namespace alive until it is closed, so close it when
// the network leaves the host. nsID identifies the namespace the socket
// is in (RouterNSID).
func (p *Plane) ListenMetadata(vni int, port int) (ln net.Listener, nsID uint64, err error) {
	path := p.routerNSPath(vni)
	if !netns.IsNamespace(path) {
		return nil, 0, fmt.Errorf("netplane: no router namespace for vni %d", vni)
	}
	err = netns.Do(path, func() error {
		var st unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return fmt.Errorf("stat netns: %w", err)
		}
		nsID = st.Ino
		addr := net.JoinHostPort(nft.MetadataAddress, strconv.Itoa(port))
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		ln = l
		return nil
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, 0, fmt.Errorf("netplane: metadata listener for vni %d: %w", vni, err)
	}
	return ln, nsID, nil
}

// RouterNSID returns an identifier of the router namespace of the network
// with this VNI as it is now (the namespace's inode), or 0 when there is
// none. It changes when the namespace is removed and made again.
func (p *Plane) RouterNSID(vni int) uint64 {
	path := p.routerNSPath(vni)
	if !netns.IsNamespace(path) {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	return st.Ino
}
