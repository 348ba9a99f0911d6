package netplane

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// A virtual machine's port is a persistent TAP device on the router's
// bridge, named like a container's veth end (so every rule that matches
// the port device holds for both), which QEMU attaches to by opening it
// (the vm driver). It outlives QEMU: a stopped or restarting VM keeps its
// port, and the port goes only when the instance leaves the network.
//
//	router netns: br0 ── ourp<uid> (veth) ══ eth0 in ouro-i<uid>   container
//	              br0 ── ourp<uid> (TAP)  ◀─ fd ─ QEMU            virtual machine

// ensureTap makes a virtual machine's TAP device on the bridge, replacing
// a device of another kind under its name (the instance's veth, say).
func (p *Plane) ensureTap(r *router, n network, port port) error {
	lk, err := r.link(port.dev)
	if err != nil {
		return err
	}
	if lk != nil && !isTap(lk) {
		if err := r.LinkDel(lk); err != nil {
			return fmt.Errorf("replace %s: %w", port.dev, err)
		}
		lk = nil
	}
	if lk == nil {
		if err := createTap(r.path, port.dev); err != nil {
			return err
		}
		if lk, err = r.LinkByName(port.dev); err != nil {
			return fmt.Errorf("create %s: %w", port.dev, err)
		}
	}
	if err := r.setMaster(lk, r.bridge); err != nil {
		return err
	}
	return r.up(lk, r.mtu)
}

// isTap reports whether lk is a TAP (not TUN) device.
func isTap(lk netlink.Link) bool {
	t, ok := lk.(*netlink.Tuntap)
	return ok && t.Mode == netlink.TUNTAP_MODE_TAP
}

// createTap makes a persistent TAP device called name, owned by root,
// with virtio-net headers, in the namespace at nsPath. A TAP belongs to
// the namespace of the thread that opens /dev/net/tun.
func createTap(nsPath, name string) error {
	return netns.Do(nsPath, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("create %s: open /dev/net/tun: %w", name, err)
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("create %s: TUNSETIFF: %w", name, err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, 0); err != nil {
			return fmt.Errorf("create %s: TUNSETOWNER: %w", name, err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return fmt.Errorf("create %s: TUNSETPERSIST: %w", name, err)
		}
		return nil
	})
}
