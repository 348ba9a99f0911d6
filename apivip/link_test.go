package apivip

import (
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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

// inNewNetns moves the test's goroutine, locked to its thread, into a new
// network namespace with a veth interface vip0 at 10.55.0.1/24; the
// thread is dropped when the test ends.
func inNewNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("unshare: %v", err)
	}
	d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vip0", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 9}}, PeerName: "vip1"}
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName("vip0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.55.0.1/24")
	if err := netlink.AddrAdd(l, addr); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

func TestLinkAddressLifetime(t *testing.T) {
	inNewNetns(t)
	if _, err := NewLinkAddress("10.56.0.100/24", ""); err == nil {
		t.Fatal("an address in no interface's subnet got an interface")
	}
	a, err := NewLinkAddress("10.55.0.100/24", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Interface() != "vip0" {
		t.Fatalf("interface %q, want vip0", a.Interface())
	}
	l, _ := netlink.LinkByName("vip0")
	has := func() bool {
		ok, err := a.present(l)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if err := a.Add(time.Second); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("address not added")
	}
	// Not renewed, the kernel removes it when its lifetime ends.
	deadline := time.Now().Add(5 * time.Second)
	for has() {
		if time.Now().After(deadline) {
			t.Fatal("the address outlived its lifetime by 4 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Add(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(); err != nil || has() {
		t.Fatalf("Remove: %v; present %v", err, has())
	}
	if err := a.Remove(); err != nil {
		t.Fatalf("Remove of an absent address: %v", err)
	}
}
