package vm

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// KVM or TCG. /dev/kvm existing is not enough: on hosts that are
// themselves VMs, nested KVM guests can hang in early boot or crawl. The
// probe boots a tiny guest with -accel kvm under a deadline and uses KVM
// only if the guest reaches 64-bit mode and says so on its serial port in
// time. The result is kept for the life of the process (per QEMU binary).

// accelChoice is the accelerator VMs get and why.
type accelChoice struct {
	kvm bool
	why string // for TCG: why not KVM
}

func (a accelChoice) detail() string {
	if a.kvm {
		return "kvm"
	}
	return "tcg: " + a.why
}

var (
	probeMu    sync.Mutex
	probeCache = map[string]accelChoice{} // by QEMU binary and mode
)

// accel returns the accelerator, probing once per process.
func (d *Driver) accel(ctx context.Context) accelChoice {
	switch d.cfg.Accel {
	case "tcg":
		return accelChoice{why: "forced by configuration"}
	case "kvm":
		return accelChoice{kvm: true}
	}
	probeMu.Lock()
	defer probeMu.Unlock()
	key := d.cfg.QEMU
	if a, ok := probeCache[key]; ok {
		return a
	}
	a := d.probeKVM(ctx)
	if ctx.Err() != nil && !a.kvm {
		return a // cut short: probe again next time
	}
	probeCache[key] = a
	if a.kvm {
		d.log.Info("KVM works: virtual machines use it")
	} else {
		d.log.Warn("KVM unusable: virtual machines run with TCG (much slower)", "why", a.why)
	}
	return a
}

// probeKVM boots the probe guest with KVM and reports whether it works.
func (d *Driver) probeKVM(ctx context.Context) accelChoice {
	if err := checkKVMDevice(); err != nil {
		return accelChoice{why: err.Error()}
	}
	qemu, err := exec.LookPath(d.cfg.QEMU)
	if err != nil {
		return accelChoice{why: fmt.Sprintf("%s not found", d.cfg.QEMU)}
	}
	dir, err := os.MkdirTemp("", "ouro-kvm-probe-")
	if err != nil {
		return accelChoice{why: fmt.Sprintf("probe: %v", err)}
	}
	defer os.RemoveAll(dir)
	out, err := runProbe(ctx, qemu, d.arch, dir, d.cfg.ProbeTimeout)
	if err != nil {
		return accelChoice{why: err.Error()}
	}
	if !bytes.Contains(out, []byte("L")) {
		return accelChoice{why: fmt.Sprintf("the KVM probe guest did not reach 64-bit mode within %s (serial output %q)", d.cfg.ProbeTimeout, out)}
	}
	return accelChoice{kvm: true}
}

// checkKVMDevice opens /dev/kvm for reading and writing.
func checkKVMDevice() error {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("/dev/kvm: %w", err)
	}
	unix.Close(fd)
	return nil
}

// runProbe runs the probe guest for at most timeout and returns what it
// wrote on its serial port. An error means QEMU could not run the guest
// at all (e.g. it refused KVM).
func runProbe(ctx context.Context, qemu, arch, dir string, timeout time.Duration) ([]byte, error) {
	serial := filepath.Join(dir, "serial")
	args, err := probeArgs(arch, dir, serial)
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(qemu, args...)
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("probe: start %s: %w", qemu, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, _ := os.ReadFile(serial)
		if bytes.Contains(out, []byte("L")) {
			return out, nil
		}
		select {
		case err := <-exited:
			exited <- err // for the deferred wait
			out, _ = os.ReadFile(serial)
			if bytes.Contains(out, []byte("L")) {
				return out, nil
			}
			msg := strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", "; ")
			return nil, fmt.Errorf("the KVM probe guest failed: %v: %s", err, truncate(msg, 300))
		case <-deadline.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		case <-tick.C:
		}
	}
}

// probeArgs returns QEMU's arguments for the probe guest.
func probeArgs(arch, dir, serial string) ([]string, error) {
	common := []string{"-nodefaults", "-no-user-config", "-display", "none", "-accel", "kvm", "-cpu", "host",
		"-chardev", "file,id=s0,path=" + qemuPath(serial), "-serial", "chardev:s0"}
	switch arch {
	case "amd64":
		img := filepath.Join(dir, "boot.img")
		if err := os.WriteFile(img, x86ProbeSector(), 0o600); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		return append([]string{"-machine", "pc", "-m", "16",
			"-drive", "file=" + qemuPath(img) + ",format=raw,if=floppy"}, common...), nil
	case "arm64":
		img := filepath.Join(dir, "probe.bin")
		if err := os.WriteFile(img, arm64Probe, 0o600); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		return append([]string{"-machine", "virt", "-m", "64", "-kernel", img}, common...), nil
	}
	return nil, fmt.Errorf("probe: no probe guest for architecture %s", arch)
}

// x86Probe is a boot sector (loaded at 0x7c00 by the BIOS) that writes
// 'R' to COM1 in real mode, enters 32-bit protected mode and writes 'P',
// builds identity page tables for the first 2 MiB at 0x1000-0x3fff,
// enables PAE, long mode and paging, writes 'L' and halts. Assembled from:
//
//	.code16
//	  cli; xor %ax,%ax; mov %ax,%ds; mov %ax,%ss; mov $0x7c00,%sp
//	  mov $0x3f8,%dx; mov $'R',%al; out %al,%dx
//	  lgdtl gdtr; mov %cr0,%eax; or $1,%eax; mov %eax,%cr0; ljmpl $0x08,$pm
//	.code32
//	pm: mov $0x10,%ax; mov %ax,%ds; mov %ax,%es; mov %ax,%ss
//	  mov $0x3f8,%dx; mov $'P',%al; out %al,%dx
//	  mov $0x1000,%edi; xor %eax,%eax; mov $3072,%ecx; rep stosl
//	  movl $0x2003,0x1000; movl $0x3003,0x2000; movl $0x83,0x3000
//	  mov $0x1000,%eax; mov %eax,%cr3
//	  mov %cr4,%eax; or $0x20,%eax; mov %eax,%cr4
//	  mov $0xc0000080,%ecx; rdmsr; or $0x100,%eax; wrmsr
//	  mov %cr0,%eax; or $0x80000000,%eax; mov %eax,%cr0; ljmpl $0x18,$lm
//	.code64
//	lm: mov $0x3f8,%dx; mov $'L',%al; out %al,%dx
//	1: hlt; jmp 1b
//	gdt: null, 32-bit code 0x00cf9a000000ffff, data 0x00cf92000000ffff,
//	     64-bit code 0x00af9a000000ffff; gdtr: limit, base
const x86Probe = "fa31c08ed88ed0bc007cbaf803b052ee660f0116c07c0f20c06683c8010f22c066ea287c0000080066b8" +
	"10008ed88ec08ed066baf803b050eebf0010000031c0b9000c0000f3abc7050010000003200000c705002000" +
	"0003300000c7050030000083000000b8001000000f22d80f20e083c8200f22e0b9800000c00f320d000100000f" +
	"300f20c00d000000800f22c0ea967c0000180066baf803b04ceef4ebfd0000000000000000ffff0000009acf00" +
	"ffff00000092cf00ffff0000009aaf001f00a07c0000"

// x86ProbeSector returns the probe padded to a 512-byte boot sector.
func x86ProbeSector() []byte {
	code, err := hex.DecodeString(x86Probe)
	if err != nil || len(code) > 510 {
		panic("vm: bad x86 probe code")
	}
	sector := make([]byte, 512)
	copy(sector, code)
	sector[510], sector[511] = 0x55, 0xaa
	return sector
}

// arm64Probe is a raw aarch64 program QEMU's virt machine jumps to:
// it stores 'L' to the PL011 data register at 0x09000000 and spins.
//
//	movz x0, #0x0900, lsl #16   // d2a12000
//	movz w1, #'L'               // 52800981
//	strb w1, [x0]               // 39000001
//	b .                         // 14000000
var arm64Probe = []byte{
	0x00, 0x20, 0xa1, 0xd2,
	0x81, 0x09, 0x80, 0x52,
	0x01, 0x00, 0x00, 0x39,
	0x00, 0x00, 0x00, 0x14,
}
