package vm

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// launch is everything one start of QEMU is made of.
type launch struct {
	arch string // host and guest GOARCH: amd64 or arm64
	kvm  bool
	// machine is the x86_64 machine type (q35 or pc).
	machine string
	// firmware is the UEFI image aarch64 disks boot with.
	firmware string
	id       string
	vcpus    int
	memMiB   int64
	// disk is the root disk overlay; "" for none.
	disk string
	// kernel, initrd and cmdline boot the guest directly when kernel is
	// set.
	kernel, initrd, cmdline string
	seed                    string
	// macs of the network interfaces; interface i is backed by the TAP
	// file descriptor 3+i. mtus, when given, are the devices' MTUs, which
	// the guest's virtio-net driver is told to use.
	macs []string
	mtus []int
	// qmp and console are the sockets, serial the console log, pidFile
	// and qemuLog QEMU's pid file and message log.
	qmp, console, serial, pidFile, qemuLog string
	// volumes are the block volumes attached at start (volumes.go).
	volumes []attachedVolume
}

// args returns QEMU's command line (without the program).
func (l launch) args() ([]string, error) {
	if l.vcpus < 1 || l.vcpus > 255 {
		return nil, fmt.Errorf("vcpus %d: use 1 to 255", l.vcpus)
	}
	if l.memMiB < 16 {
		return nil, fmt.Errorf("memory %d MiB: use at least 16 MiB", l.memMiB)
	}
	if l.disk == "" && l.kernel == "" && !slices.ContainsFunc(l.volumes, func(v attachedVolume) bool { return v.Boot }) {
		return nil, fmt.Errorf("nothing to boot: the image has neither a disk nor a kernel")
	}
	accel, cpu := "tcg", "max"
	if l.kvm {
		accel, cpu = "kvm", "host"
	}
	var machine, console string
	switch l.arch {
	case "amd64":
		machine, console = l.machine, "ttyS0"
	case "arm64":
		machine, console = "virt,gic-version=max", "ttyAMA0"
		if !l.kvm {
			// TCG computes pointer authentication codes with the
			// architected QARMA cipher by default, which makes a Debian
			// kernel boot about three times slower; the guest cannot
			// tell an implementation-defined cipher from it.
			cpu = "max,pauth-impdef=on"
		}
	default:
		return nil, fmt.Errorf("architecture %s is not supported", l.arch)
	}
	a := []string{
		"-name", "ouro-" + l.id,
		"-machine", machine,
		"-accel", accel,
		"-cpu", cpu,
		"-nodefaults", "-no-user-config", "-display", "none",
		"-smp", strconv.Itoa(l.vcpus),
		"-m", strconv.FormatInt(l.memMiB, 10) + "M",
		"-qmp", "unix:" + qemuPath(l.qmp) + ",server=on,wait=off",
		"-pidfile", l.pidFile,
		// Detach: the VM outlives whoever started it. -D keeps QEMU's
		// stderr (its error messages) in qemuLog instead of /dev/null.
		"-daemonize", "-D", l.qemuLog,
		// A guest that powers off leaves QEMU paused in status
		// "shutdown", so the driver can tell it from a crash.
		"-action", "shutdown=pause",
		"-chardev", "socket,id=serial0,path=" + qemuPath(l.console) + ",server=on,wait=off,logfile=" +
			qemuPath(l.serial) + ",logappend=on",
		"-serial", "chardev:serial0",
		"-device", "virtio-rng-pci",
	}
	if l.arch == "arm64" && l.kernel == "" {
		if l.firmware == "" {
			return nil, fmt.Errorf("aarch64 disk images need UEFI firmware (install qemu-efi-aarch64)")
		}
		a = append(a, "-bios", l.firmware)
	}
	if l.kernel != "" {
		a = append(a, "-kernel", l.kernel)
		if l.initrd != "" {
			a = append(a, "-initrd", l.initrd)
		}
		a = append(a, "-append", strings.TrimSpace(l.cmdline+" console="+console))
	}
	if l.disk != "" {
		dev := "virtio-blk-pci,drive=disk0"
		if l.kernel == "" {
			dev += ",bootindex=0" // with -kernel, the kernel loader is
		}
		a = append(a, "-drive", "file="+qemuPath(l.disk)+",if=none,id=disk0,format=qcow2,discard=unmap",
			"-device", dev)
	}
	if l.seed != "" {
		a = append(a, "-drive", "file="+qemuPath(l.seed)+",if=none,id=seed0,format=raw,readonly=on",
			"-device", "virtio-blk-pci,drive=seed0")
	}
	vargs, err := l.volumeArgs()
	if err != nil {
		return nil, err
	}
	a = append(a, vargs...)
	for i, mac := range l.macs {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("interface %d: MAC %q is not an Ethernet address", i, mac)
		}
		// romfile= skips the PXE option ROM: no network boot, and no
		// dependency on the ipxe ROM files.
		dev := fmt.Sprintf("virtio-net-pci,netdev=net%d,mac=%s,romfile=", i, hw)
		if i < len(l.mtus) && l.mtus[i] >= 68 {
			dev += fmt.Sprintf(",host_mtu=%d", l.mtus[i])
		}
		a = append(a, "-netdev", fmt.Sprintf("tap,id=net%d,fd=%d", i, 3+i), "-device", dev)
	}
	return a, nil
}

// qemuPath escapes a value inside a QEMU key=value option list, where a
// comma is written twice.
func qemuPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }
