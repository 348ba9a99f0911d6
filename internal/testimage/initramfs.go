package testimage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// initScript is the tiny image's /init.
const initScript = `#!/bin/sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "OURO-INIT $(uname -r) $(uname -m)"
for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || echo "OURO-INSMOD-FAILED $m"
done
for d in /sys/block/vd*; do
	[ -e "$d" ] && echo "OURO-DISK ${d##*/} $(cat $d/size)"
done
ip link set lo up
# acpid opens the event devices it finds when it starts, and devtmpfs
# makes them a little after the modules load (late on a busy host).
n=0
while ! ls /dev/input/event* >/dev/null 2>&1 && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
acpid -c /etc/acpi -l /dev/null
(while true; do setsid cttyhack sh; done) &
# ouro.addr=<address>/<prefix> on the kernel command line configures eth0
# statically instead of by DHCP (and skips the metadata service); each
# ouro.ping=<address> is pinged like a ping= line of the user-data.
addr=
targets=
for a in $(cat /proc/cmdline); do
	case "$a" in
	ouro.addr=*) addr="${a#ouro.addr=}" ;;
	ouro.ping=*) targets="$targets ${a#ouro.ping=}" ;;
	esac
done
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	if [ -n "$addr" ]; then
		if ip addr add "$addr" dev eth0; then echo "OURO-ADDR $addr"; else echo "OURO-ADDR failed"; fi
	else
		udhcpc -i eth0 -s /etc/udhcpc.script -t 60 -T 1 -A 1 -n -q || echo "OURO-DHCP failed"
		id=
		i=0
		while [ -z "$id" ] && [ $i -lt 5 ]; do
			id=$(timeout 3 wget -q -O - http://169.254.169.254/latest/meta-data/instance-id 2>/dev/null)
			[ -n "$id" ] || sleep 1
			i=$((i+1))
		done
		if [ -n "$id" ]; then echo "OURO-METADATA instance-id=$id"; else echo "OURO-METADATA unavailable"; fi
		ud=$(timeout 3 wget -q -O - http://169.254.169.254/latest/user-data 2>/dev/null)
		targets="$targets $(echo "$ud" | sed -n 's/^ping=\([0-9.]*\)$/\1/p')"
	fi
	# Each target: ping it until it answers (a minute at most) and say
	# whether it did.
	for target in $targets; do
		n=0
		until ping -c 1 -W 1 "$target" >/dev/null 2>&1; do
			n=$((n+1))
			[ $n -lt 60 ] || break
			sleep 1
		done
		if [ $n -lt 60 ]; then echo "OURO-PING $target ok"; else echo "OURO-PING $target failed"; fi
	done
else
	echo "OURO-NO-NETWORK"
fi
echo "OURO-READY"
while true; do sleep 3600; done
`

// udhcpcScript configures eth0 from a lease and announces the address.
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	if [ -n "$router" ]; then ip route replace default via "${router%% *}" dev "$interface"; fi
	echo "OURO-DHCP $ip"
	;;
esac
`

// powerScript is what busybox acpid runs for the power button.
const powerScript = `#!/bin/sh
echo "OURO-POWEROFF"
poweroff -f
`

// writeInitramfs writes the initramfs (an uncompressed newc cpio
// archive) to path, made of the static busybox at busybox, the init
// scripts and mods of the kernel release.
func writeInitramfs(path, busybox, release string, mods []module) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	bw := bufio.NewWriter(f)
	w := &cpioWriter{w: bw}
	for _, d := range []string{"bin", "dev", "etc", "etc/acpi", "etc/acpi/PWRF", "lib", "lib/modules",
		"proc", "root", "run", "sys", "tmp", "var", "var/log"} {
		w.dir(d, 0o755)
	}
	w.node("dev/console", 0o600, 5, 1)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		f.Close()
		return fmt.Errorf("initramfs: %w", err)
	}
	w.file("bin/busybox", 0o755, bb)
	w.symlink("bin/sh", "busybox")
	w.file("init", 0o755, []byte(initScript))
	w.file("etc/udhcpc.script", 0o755, []byte(udhcpcScript))
	w.file("etc/acpi/PWRF/00000080", 0o755, []byte(powerScript))
	var order []string
	for _, m := range mods {
		data, err := os.ReadFile(m.path)
		if err != nil {
			f.Close()
			return fmt.Errorf("initramfs: %w", err)
		}
		w.file("lib/modules/"+m.name+".ko", 0o644, data)
		order = append(order, m.name)
	}
	w.file("lib/modules/order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	w.file("etc/os-release", 0o644, []byte(fmt.Sprintf("NAME=ouro-tiny\nKERNEL=%s\n", release)))
	w.trailer()
	if w.err == nil {
		w.err = bw.Flush()
	}
	if err := f.Close(); w.err == nil {
		w.err = err
	}
	if w.err != nil {
		return fmt.Errorf("initramfs %s: %w", filepath.Base(path), w.err)
	}
	return nil
}

// cpioWriter writes a newc ("070701") cpio archive, the format the
// kernel unpacks into its initial root filesystem.
type cpioWriter struct {
	w   *bufio.Writer
	ino int
	err error
}

// File type bits of the mode field.
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

func (c *cpioWriter) dir(name string, perm int) { c.entry(name, modeDir|perm, nil, 0, 0) }
func (c *cpioWriter) file(name string, perm int, data []byte) {
	c.entry(name, modeFile|perm, data, 0, 0)
}
func (c *cpioWriter) symlink(name, target string) {
	c.entry(name, modeSymlink|0o777, []byte(target), 0, 0)
}
func (c *cpioWriter) node(name string, perm, major, minor int) {
	c.entry(name, modeChar|perm, nil, major, minor)
}
func (c *cpioWriter) trailer() { c.entry("TRAILER!!!", 0, nil, 0, 0) }

// entry writes one header, name and data, each padded to 4 bytes.
func (c *cpioWriter) entry(name string, mode int, data []byte, rmajor, rminor int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
