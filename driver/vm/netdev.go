package vm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// Networking. The network plane makes, for each VM interface, a
// persistent TAP device attached to the network's bridge inside the
// network's router namespace, with the name a container's veth would
// have, so every rule that matches the port device applies to VMs
// unchanged. The driver attaches to that device: it opens /dev/net/tun
// on a thread switched into the router namespace (a TAP is looked up in
// the namespace of the opener), and hands the file descriptor to QEMU:
//
//	router netns ouro-n<vni>:  br0 ── ourp<uid> (TAP) ◀── fd 3+i ── QEMU
//	                                                      -netdev tap,fd=…
//
// The descriptor works from any namespace once open; QEMU itself runs in
// the agent's namespace.

var tapName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// checkNICs refuses interfaces the driver cannot attach.
func checkNICs(nics []driver.NIC) error {
	for i, n := range nics {
		if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			return fmt.Errorf("interfaces[%d]: MAC %q is not a unicast Ethernet address", i, n.MAC)
		}
		if n.Tap == "" || n.RouterNetNS == "" {
			return fmt.Errorf("interfaces[%d] (%s): no TAP device given (the network plane has not made its port)", i, n.MAC)
		}
		if !tapName.MatchString(n.Tap) {
			return fmt.Errorf("interfaces[%d]: TAP name %q is not a valid interface name", i, n.Tap)
		}
	}
	return nil
}

// openTap opens the existing TAP device name in the network namespace at
// nsPath and returns the queue's file descriptor (with virtio-net headers,
// without packet information, as QEMU expects) and the device's MTU (the
// overlay's, which the guest must use too).
func openTap(nsPath, name string) (*os.File, int, error) {
	var f *os.File
	var mtu int
	err := netns.Do(nsPath, func() error {
		// TUNSETIFF would make a new, unattached device if the network
		// plane's were missing: check first.
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("TAP device %s not found in %s: %w", name, nsPath, err)
		}
		mtu = ifc.MTU
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("TAP %s: %w", name, err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("attach to TAP %s: it is in use by another process", name)
			}
			return fmt.Errorf("attach to TAP %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), "tap:"+name)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return f, mtu, nil
}

// openTaps opens the TAP of every interface, in order, and returns their
// files and MTUs.
func openTaps(nics []driver.NIC) ([]*os.File, []int, error) {
	var files []*os.File
	var mtus []int
	for _, n := range nics {
		f, mtu, err := openTap(n.RouterNetNS, n.Tap)
		if err != nil {
			closeAll(files)
			return nil, nil, err
		}
		files, mtus = append(files, f), append(mtus, mtu)
	}
	return files, mtus, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
