package vm

import (
	"slices"
	"strings"
	"testing"
)

// baseLaunch is a valid x86 kernel launch; tests change what they need.
func baseLaunch() launch {
	return launch{
		arch: "amd64", machine: "q35", id: "0f8fad5b-d9cb-469f-a165-70867728950e",
		vcpus: 2, memMiB: 512,
		kernel: "/d/images/k", initrd: "/d/images/i", cmdline: "quiet",
		seed: "/d/i/seed.iso", qmp: "/r/x/qmp.sock", console: "/r/x/console.sock",
		serial: "/d/i/serial.log", pidFile: "/d/i/qemu.pid", qemuLog: "/d/i/qemu.log",
	}
}

// hasPair reports whether args has flag followed by value.
func hasPair(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

func TestLaunchArgs(t *testing.T) {
	tests := []struct {
		name   string
		change func(*launch)
		want   [][2]string // flag, value pairs that must appear
		absent []string    // flags that must not appear
	}{
		{
			name: "x86 kernel with TCG",
			want: [][2]string{
				{"-machine", "q35"}, {"-accel", "tcg"}, {"-cpu", "max"}, {"-smp", "2"}, {"-m", "512M"},
				{"-name", "ouro-0f8fad5b-d9cb-469f-a165-70867728950e"},
				{"-qmp", "unix:/r/x/qmp.sock,server=on,wait=off"},
				{"-pidfile", "/d/i/qemu.pid"}, {"-D", "/d/i/qemu.log"}, {"-action", "shutdown=pause"},
				{"-chardev", "socket,id=serial0,path=/r/x/console.sock,server=on,wait=off,logfile=/d/i/serial.log,logappend=on"},
				{"-serial", "chardev:serial0"},
				{"-kernel", "/d/images/k"}, {"-initrd", "/d/images/i"}, {"-append", "quiet console=ttyS0"},
				{"-drive", "file=/d/i/seed.iso,if=none,id=seed0,format=raw,readonly=on"},
			},
			absent: []string{"-bios", "-netdev"},
		},
		{
			name:   "x86 disk with KVM on pc",
			change: func(l *launch) { l.kvm, l.machine, l.kernel, l.initrd, l.disk = true, "pc", "", "", "/d/i/disk.qcow2" },
			want: [][2]string{
				{"-machine", "pc"}, {"-accel", "kvm"}, {"-cpu", "host"},
				{"-drive", "file=/d/i/disk.qcow2,if=none,id=disk0,format=qcow2,discard=unmap"},
				{"-device", "virtio-blk-pci,drive=disk0,bootindex=0"},
			},
			absent: []string{"-kernel", "-initrd", "-append"},
		},
		{
			name:   "disk booted with a kernel",
			change: func(l *launch) { l.disk, l.initrd, l.cmdline = "/d/i/disk.qcow2", "", "root=/dev/vda1" },
			want:   [][2]string{{"-kernel", "/d/images/k"}, {"-append", "root=/dev/vda1 console=ttyS0"}, {"-device", "virtio-blk-pci,drive=disk0"}},
			absent: []string{"-initrd"},
		},
		{
			name:   "arm64 kernel",
			change: func(l *launch) { l.arch = "arm64" },
			want:   [][2]string{{"-machine", "virt,gic-version=max"}, {"-cpu", "max,pauth-impdef=on"}, {"-append", "quiet console=ttyAMA0"}},
			absent: []string{"-bios"},
		},
		{
			name: "arm64 disk boots UEFI",
			change: func(l *launch) {
				l.arch, l.kvm, l.kernel, l.disk, l.firmware = "arm64", true, "", "/d/i/disk.qcow2", "/fw/QEMU_EFI.fd"
			},
			want: [][2]string{{"-bios", "/fw/QEMU_EFI.fd"}, {"-cpu", "host"}},
		},
		{
			name: "two interfaces on TAP descriptors 3 and 4",
			change: func(l *launch) {
				l.macs, l.mtus = []string{"0A:58:AC:1F:00:05", "0a:58:0a:28:00:07"}, []int{1450, 0}
			},
			want: [][2]string{
				{"-netdev", "tap,id=net0,fd=3"}, {"-device", "virtio-net-pci,netdev=net0,mac=0a:58:ac:1f:00:05,romfile=,host_mtu=1450"},
				{"-netdev", "tap,id=net1,fd=4"}, {"-device", "virtio-net-pci,netdev=net1,mac=0a:58:0a:28:00:07,romfile="},
			},
		},
		{
			name:   "commas in paths are doubled in option lists",
			change: func(l *launch) { l.seed, l.console = "/d/a,b/seed.iso", "/r/a,b/c.sock" },
			want: [][2]string{
				{"-drive", "file=/d/a,,b/seed.iso,if=none,id=seed0,format=raw,readonly=on"},
				{"-chardev", "socket,id=serial0,path=/r/a,,b/c.sock,server=on,wait=off,logfile=/d/i/serial.log,logappend=on"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := baseLaunch()
			if tc.change != nil {
				tc.change(&l)
			}
			args, err := l.args()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !hasPair(args, w[0], w[1]) {
					t.Errorf("missing %s %s in\n%s", w[0], w[1], strings.Join(args, " "))
				}
			}
			for _, a := range tc.absent {
				if slices.Contains(args, a) {
					t.Errorf("unexpected %s in\n%s", a, strings.Join(args, " "))
				}
			}
			for _, f := range []string{"-nodefaults", "-no-user-config", "-daemonize"} {
				if !slices.Contains(args, f) {
					t.Errorf("missing %s", f)
				}
			}
			if !hasPair(args, "-display", "none") {
				t.Error("missing -display none")
			}
		})
	}
}

func TestLaunchArgsRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(*launch)
		want   string
	}{
		{"no vcpu", func(l *launch) { l.vcpus = 0 }, "vcpus"},
		{"tiny memory", func(l *launch) { l.memMiB = 8 }, "memory"},
		{"nothing to boot", func(l *launch) { l.kernel = "" }, "nothing to boot"},
		{"bad MAC", func(l *launch) { l.macs = []string{"0a:58:zz"} }, "MAC"},
		{"arm64 disk without firmware", func(l *launch) { l.arch, l.kernel, l.disk = "arm64", "", "/d" }, "UEFI"},
		{"unknown architecture", func(l *launch) { l.arch = "riscv64" }, "riscv64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := baseLaunch()
			tc.change(&l)
			if _, err := l.args(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
