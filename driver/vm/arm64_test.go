package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// TestArm64BootsUnderEmulation runs the driver as it runs on an arm64 host
// (a Raspberry Pi): qemu-system-aarch64 with the argv the driver builds for
// arm64 — the virt machine, console ttyAMA0, virtio PCI devices, the
// cloud-init seed disk and a NIC on a TAP — but under TCG, which works on
// any host. The guest is Debian's arm64 kernel with the tiny image's init.
// It proves the argv boots an aarch64 guest whose devices work (the seed
// disk, the NIC both ways, the console both ways) and that the driver's
// QMP path powers it off and ends QEMU. It does not prove KVM on a Pi.
func TestArm64BootsUnderEmulation(t *testing.T) {
	d, blobs := arm64Driver(t)
	testenv.NeedBinary(t, "ip")
	kernel, initrd := testimage.TinyArm64(t)
	kb := blobs.addFile(t, kernel, api.MediaTypeKernel)
	ib := blobs.addFile(t, initrd, api.MediaTypeInitrd)

	// The NIC: a TAP the way the network plane makes ports, in a
	// namespace of the test's own, with the host end's address.
	const hostAddr, guestAddr = "192.0.2.1", "192.0.2.2"
	ns, tap := testTap(t, hostAddr+"/24")

	id := testID(t)
	cleanupVM(t, d, id)
	spec := driver.Spec{
		ID: id, Name: "arm64-1",
		Image: api.ImageSpec{Format: api.FormatKernel, Kernel: &kb, Initrd: &ib, Architecture: "arm64",
			Cmdline: "ouro.addr=" + guestAddr + "/24 ouro.ping=" + hostAddr},
		Resources:  api.Resources{VCPUs: 1, MemoryMiB: 256},
		Interfaces: []driver.NIC{{MAC: "0a:58:c0:00:02:02", IP: guestAddr, Tap: tap, RouterNetNS: ns}},
	}
	ctx := context.Background()
	start, args := createAndStart(t, d, spec)
	// The process runs the argv the driver builds for arm64.
	if args[0] != d.cfg.QEMU || !hasPair(args, "-machine", "virt,gic-version=max") || !hasPair(args, "-accel", "tcg") ||
		!hasPair(args, "-kernel", filepath.Join(d.images.Dir(), strings.TrimPrefix(kb.Digest, "sha256:"))) {
		t.Fatalf("QEMU runs %q, want %s with the virt machine under TCG and the kernel", args, d.cfg.QEMU)
	}

	con := watchConsole(t, d, id)
	con.wait(t, "OURO-INIT ", "aarch64")
	t.Logf("TCG boot of the aarch64 guest to its init: %v", time.Since(start).Round(100*time.Millisecond))
	con.wait(t, "Machine model: linux,dummy-virt") // the device tree of the virt machine
	con.wait(t, "OURO-DISK vda ")                  // the seed on virtio-blk-pci
	con.wait(t, "OURO-ADDR "+guestAddr+"/24")      // virtio-net-pci came up as eth0
	con.wait(t, "OURO-PING "+hostAddr+" ", "ok")   // and carries packets both ways
	con.wait(t, "OURO-READY")
	if strings.Contains(con.text(), "OURO-INSMOD-FAILED") {
		t.Errorf("a module did not load:\n%s", tailString(con.text(), 3000))
	}
	con.run(t, "echo OURO-ARCH-$(uname -m)-$((6*7))", "OURO-ARCH-aarch64-42")
	// The guest's MAC is the spec's and its MTU the TAP's (host_mtu).
	con.run(t, "echo OURO-LINK-$(cat /sys/class/net/eth0/address)-$(cat /sys/class/net/eth0/mtu)",
		"OURO-LINK-0a:58:c0:00:02:02-1450")

	// Stop presses the power button over QMP (a GPIO key on the virt
	// machine); the guest powers off and the driver ends QEMU.
	stopByGuest(t, d, id, con)
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// TestArm64DiskBootsUEFI boots an aarch64 disk image the way the driver
// boots one on an arm64 host: UEFI firmware (-bios) and the instance's
// overlay as the boot disk, under TCG. The guest comes up with ACPI and
// the driver's Stop powers it off through the ACPI power button.
func TestArm64DiskBootsUEFI(t *testing.T) {
	d, blobs := arm64Driver(t)
	if d.firmware() == "" {
		testenv.NeedFile(t, "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")
	}
	disk := testimage.TinyArm64Disk(t)
	db := blobs.addFile(t, disk, api.MediaTypeDiskRaw)

	id := testID(t)
	cleanupVM(t, d, id)
	spec := driver.Spec{
		ID: id, Name: "arm64-disk-1",
		Image:     api.ImageSpec{Format: api.FormatRaw, Disk: &db, Architecture: "arm64"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 256, DiskGiB: 1},
	}
	start, args := createAndStart(t, d, spec)
	if !hasPair(args, "-bios", d.firmware()) || slices.Contains(args, "-kernel") {
		t.Fatalf("QEMU runs %q, want UEFI firmware and no -kernel", args)
	}

	con := watchConsole(t, d, id)
	con.wait(t, "efi: EFI v")                // the firmware started the kernel
	con.wait(t, "ACPI: Interpreter enabled") // and gave it ACPI tables
	con.wait(t, "OURO-INIT ", "aarch64")
	t.Logf("TCG boot of the aarch64 disk through UEFI to the guest's init: %v", time.Since(start).Round(100*time.Millisecond))
	con.wait(t, "OURO-DISK vda 2097152") // the 1 GiB overlay is the first disk
	con.wait(t, "OURO-DISK vdb ")        // the seed the second
	con.wait(t, "OURO-READY")

	stopByGuest(t, d, id, con)
}

// arm64Driver returns a driver that runs VMs as on an arm64 host, with
// qemu-system-aarch64 (under TCG), and its blob source.
func arm64Driver(t *testing.T) (*Driver, *fakeBlobs) {
	t.Helper()
	testenv.NeedRoot(t) // the image cache, network namespaces, TAPs
	qemu := testenv.NeedBinary(t, "qemu-system-aarch64")
	testenv.NeedBinary(t, "qemu-img")
	testenv.NeedBinary(t, "genisoimage")
	blobs := newFakeBlobs()
	d := testDriver(t, blobs, func(c *Config) { c.QEMU = qemu })
	d.arch = "arm64" // what New finds on an arm64 host
	return d, blobs
}

// testTap makes a network namespace with a persistent TAP device (with
// virtio-net headers, as the network plane makes a VM's port) that has
// addr, and returns the namespace's path and the device's name.
func testTap(t *testing.T, addr string) (nsPath, dev string) {
	t.Helper()
	nsPath = filepath.Join(netns.DefaultDir, fmt.Sprintf("ouro-test-vm-%d", os.Getpid()))
	if _, err := netns.Create(nsPath); err != nil {
		t.Fatal(err)
	}
	// The TAP goes with the namespace.
	t.Cleanup(func() { netns.Delete(nsPath) })
	dev = "ourptest0"
	for _, args := range [][]string{
		{"tuntap", "add", "dev", dev, "mode", "tap", "vnet_hdr"},
		{"addr", "add", addr, "dev", dev},
		// An overlay's MTU, which the guest must be told (host_mtu).
		{"link", "set", dev, "mtu", "1450", "up"},
	} {
		if out, err := netns.Run(nsPath, "", "ip", args...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nsPath, dev
}

// consoleWatch holds a VM's serial console: what the serial log held when
// it connected, then everything the guest writes, as it comes.
type consoleWatch struct {
	conn net.Conn
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{} // closed when buf grows or the stream ends; then replaced
	done bool
}

// watchConsole connects to the VM's console for the rest of the test.
// QEMU writes the serial log before the socket, so the log read after
// connecting and the stream together miss nothing.
func watchConsole(t *testing.T, d *Driver, id string) *consoleWatch {
	t.Helper()
	c, err := d.Console(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	w := &consoleWatch{conn: c.(net.Conn), more: make(chan struct{})}
	t.Cleanup(func() { w.conn.Close() })
	logged, _ := os.ReadFile(d.LogPath(id))
	w.buf.Write(logged)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := w.conn.Read(b)
			w.mu.Lock()
			w.buf.Write(b[:n])
			close(w.more)
			w.more = make(chan struct{})
			w.done = err != nil
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w
}

func (w *consoleWatch) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait waits until a line of the console holds prefix followed, later on
// the line, by suffix (if given).
func (w *consoleWatch) wait(t *testing.T, prefix string, suffix ...string) {
	t.Helper()
	deadline := time.NewTimer(bootTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		text, more, done := w.buf.String(), w.more, w.done
		w.mu.Unlock()
		for _, line := range strings.Split(text, "\n") {
			if i := strings.Index(line, prefix); i >= 0 && (len(suffix) == 0 || strings.Contains(line[i+len(prefix):], suffix[0])) {
				return
			}
		}
		if done {
			t.Fatalf("console closed before %q %v:\n%s", prefix, suffix, tailString(text, 3000))
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("console lacks %q %v after %v:\n%s", prefix, suffix, bootTimeout, tailString(text, 3000))
		}
	}
}

// run types cmd on the console and waits for want, which must not be in
// cmd (the console echoes it).
func (w *consoleWatch) run(t *testing.T, cmd, want string) {
	t.Helper()
	if strings.Contains(cmd, want) {
		t.Fatalf("%q contains %q: the echo would match", cmd, want)
	}
	if _, err := io.WriteString(w.conn, "\n"+cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	w.wait(t, want)
}

// createAndStart creates and starts spec's VM and returns when it was
// started and the command line its QEMU process runs.
func createAndStart(t *testing.T, d *Driver, spec driver.Spec) (time.Time, []string) {
	t.Helper()
	ctx := context.Background()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	st, err := d.Inspect(ctx, spec.ID)
	if err != nil || st.State != driver.StateRunning {
		t.Fatalf("after Start: %+v %v", st, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return start, strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
}

// stopByGuest stops VM id through the driver and checks that the guest
// powered itself off (exit code 0) and no QEMU process is left.
func stopByGuest(t *testing.T, d *Driver, id string, con *consoleWatch) {
	t.Helper()
	ctx := context.Background()
	if err := d.Stop(ctx, id, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := d.Inspect(ctx, id)
	if err != nil || st.State != driver.StateStopped || !st.HasExitCode || st.ExitCode != 0 {
		t.Fatalf("after Stop: %+v %v, want stopped by the guest (exit code 0):\n%s", st, err, tailString(con.text(), 3000))
	}
	con.wait(t, "reboot: Power down")
	if got := qemuProcesses(id); len(got) != 0 {
		t.Fatalf("QEMU still running after Stop: %v", got)
	}
}
