package netplane

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// attachTap opens the TAP dev in the namespace at ns as QEMU would (the
// vm driver's way) and returns the file.
func attachTap(t *testing.T, ns, dev string) *os.File {
	t.Helper()
	var f *os.File
	err := netns.Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(dev)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), dev)
		return nil
	})
	if err != nil {
		t.Fatalf("attach to %s: %v", dev, err)
	}
	return f
}

// TestVMPortIsATap: a "vm" port is a persistent TAP on the bridge with
// the port's rules and no instance namespace; it survives re-applies and
// a process detaching, switches kind with the port, and goes with it.
func TestVMPortIsATap(t *testing.T) {
	l := newLab(t)
	h1 := l.host["h1"]
	a := portSpec(1, "a", "172.31.0.5")
	a.Driver = api.DriverVM
	a.Ingress = []api.FirewallRule{allowAll}
	spec := func(ports ...api.HostPort) api.HostNetworkSpec {
		return api.HostNetworkSpec{Networks: []api.HostNetworkEntry{{
			UID: uid(100), Name: "default", Project: "p", VNI: 5001,
			CIDR: "172.31.0.0/20", Gateway: "172.31.0.1", NAT: true, Ports: ports,
		}}}
	}
	router := h1.plane.RouterNSPath(5001)
	dev := h1.plane.PortDevice(uid(1))
	inst := h1.plane.NetNSPath(uid(1))
	if dev != portDevName(uid(1)) {
		t.Fatalf("PortDevice = %q, want %q", dev, portDevName(uid(1)))
	}
	isTapOnBridge := func() {
		t.Helper()
		out := l.ip(router, "-d", "link", "show", dev)
		if !strings.Contains(out, "tun type tap") || !strings.Contains(out, "master br0") || !strings.Contains(out, "mtu 1450") {
			t.Fatalf("%s is not a TAP on br0 with the overlay MTU:\n%s", dev, out)
		}
		if !strings.Contains(out, "vnet_hdr") || !strings.Contains(out, "persist on") {
			t.Errorf("%s lacks vnet_hdr or persistence:\n%s", dev, out)
		}
		if netns.IsNamespace(inst) {
			t.Errorf("a VM port has an instance namespace %s", inst)
		}
		rs := l.nft(router, "list", "table", "bridge", "ouro-sg")
		if !strings.Contains(rs, "spoof-"+dev) {
			t.Errorf("no anti-spoofing chain for %s:\n%s", dev, rs)
		}
	}

	l.apply("h1", spec(a))
	isTapOnBridge()
	idx := linkIndex(t, router, dev)

	// Attached and detached, as QEMU starts and stops: the device stays.
	f := attachTap(t, router, dev)
	l.apply("h1", spec(a))
	f.Close()
	l.apply("h1", spec(a))
	isTapOnBridge()
	if got := linkIndex(t, router, dev); got != idx {
		t.Errorf("re-apply made the TAP again (index %d → %d)", idx, got)
	}

	// The same port as a container's: a veth into the instance namespace.
	c := a
	c.Driver = api.DriverContainer
	l.apply("h1", spec(c))
	if out := l.ip(router, "-d", "link", "show", dev); !strings.Contains(out, "veth") {
		t.Fatalf("container port is not a veth:\n%s", out)
	}
	mustPing(t, inst, "172.31.0.1")

	// And back: the veth and the instance namespace go.
	l.apply("h1", spec(a))
	isTapOnBridge()
	if _, err := os.Stat(inst); !os.IsNotExist(err) {
		t.Errorf("instance namespace %s left after the port became a TAP", inst)
	}

	// The port leaves the network: the TAP goes.
	l.apply("h1", spec())
	if _, err := netns.Run(router, "", "ip", "link", "show", dev); err == nil {
		t.Errorf("%s left after its port was removed", dev)
	}
}

func linkIndex(t *testing.T, ns, dev string) int {
	t.Helper()
	var idx int
	err := netns.Do(ns, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		idx = ifc.Index
		return nil
	})
	if err != nil {
		t.Fatal(fmt.Errorf("index of %s: %w", dev, err))
	}
	return idx
}
