// Package testimage builds small virtual machine images for tests from
// what a Debian host has installed, and caches them outside the
// repository (under /var/cache/ouro-testimages, keyed by a hash of every
// input).
//
// The tiny image is the host's kernel (/boot/vmlinuz-*) with an initramfs
// made of the static busybox and the virtio network modules. Its /init
// prints, on the serial console:
//
//	OURO-INIT <kernel release> <machine>  machine as uname -m says
//	OURO-DISK <device> <size in 512-byte sectors>   per virtio disk
//	OURO-DHCP <address>                   once udhcpc got a lease on eth0
//	OURO-METADATA instance-id=<id>        from http://169.254.169.254, or
//	OURO-METADATA unavailable
//	OURO-PING <address> ok|failed         per line ping=<address> of the
//	                                      user-data from the metadata service
//	OURO-READY
//
// and then stays up: the kernel answers ping, a shell runs on the console,
// and the power button powers the guest off. With ouro.addr=<address>/<prefix>
// on the kernel command line, eth0 gets that address instead of a DHCP
// lease (printing OURO-ADDR <address>/<prefix>) and the metadata service
// is not asked; each ouro.ping=<address> there is pinged like a ping= line
// of the user-data.
//
// TinyArm64 (arm64.go) is the same image for aarch64, built from Debian's
// arm64 kernel and busybox packages, for booting under emulation on other
// hosts; TinyArm64Disk puts it on a disk that UEFI firmware boots.
package testimage

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// CacheDir is where built images are kept.
const CacheDir = "/var/cache/ouro-testimages"

// Busybox is the static busybox the initramfs is made of.
const Busybox = "/bin/busybox"

// Modules are the kernel modules the tiny image loads (with their
// dependencies): virtio PCI, network and block, and the ACPI power button
// with the event device busybox acpid reads.
var Modules = []string{"virtio_pci", "virtio_net", "virtio_blk", "button", "evdev"}

// format is bumped when the image's layout or init changes.
const format = "tiny-6"

// Tiny returns the kernel and initramfs of the tiny image, building them
// on first use. It skips the test (fails it in CI) when the host has no
// kernel, modules or static busybox.
func Tiny(t testing.TB) (kernel, initrd string) {
	t.Helper()
	testenv.NeedFile(t, Busybox)
	k, err := hostKernel()
	if err != nil {
		testenv.NeedFile(t, "/boot/vmlinuz-* (a Debian linux-image package)")
	}
	testenv.NeedFile(t, filepath.Join("/lib/modules", k.release, "modules.dep"))
	kernel, initrd, err = Build(CacheDir)
	if err != nil {
		t.Fatalf("build tiny test image: %v", err)
	}
	return kernel, initrd
}

// Build builds the tiny image into cacheDir unless it is there, and
// returns its kernel and initramfs paths.
func Build(cacheDir string) (kernel, initrd string, err error) {
	k, err := hostKernel()
	if err != nil {
		return "", "", err
	}
	modDir := filepath.Join("/lib/modules", k.release)
	mods, err := resolveModules(modDir, Modules)
	if err != nil {
		return "", "", err
	}
	// The key covers every input's content.
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", format, initScript, udhcpcScript, powerScript)
	inputs := []string{k.path, Busybox}
	for _, m := range mods {
		inputs = append(inputs, m.path)
	}
	for _, in := range inputs {
		if err := hashFile(h, in); err != nil {
			return "", "", err
		}
	}
	dir := filepath.Join(cacheDir, "tiny-"+hex.EncodeToString(h.Sum(nil))[:16])
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.cpio")
	if fileExists(kernel) && fileExists(initrd) {
		return kernel, initrd, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", "", fmt.Errorf("test image cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-tiny-")
	if err != nil {
		return "", "", fmt.Errorf("test image cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := copyFile(k.path, filepath.Join(tmp, "vmlinuz")); err != nil {
		return "", "", err
	}
	if err := writeInitramfs(filepath.Join(tmp, "initrd.cpio"), Busybox, k.release, mods); err != nil {
		return "", "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if fileExists(kernel) && fileExists(initrd) {
			return kernel, initrd, nil // built by someone else meanwhile
		}
		return "", "", fmt.Errorf("test image cache: %w", err)
	}
	return kernel, initrd, nil
}

// kernelFile is an installed kernel.
type kernelFile struct{ path, release string }

// hostKernel returns the newest /boot/vmlinuz-<release>.
func hostKernel() (kernelFile, error) {
	matches, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(matches) == 0 {
		return kernelFile{}, errors.New("no kernel in /boot (install linux-image-amd64 or linux-image-arm64)")
	}
	sort.Slice(matches, func(i, j int) bool { return versionLess(matches[i], matches[j]) })
	p := matches[len(matches)-1]
	return kernelFile{path: p, release: strings.TrimPrefix(filepath.Base(p), "vmlinuz-")}, nil
}

// versionLess compares strings by their runs of digits as numbers.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := leadingNumber(a)
		db, rb := leadingNumber(b)
		if da >= 0 && db >= 0 {
			if da != db {
				return da < db
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func leadingNumber(s string) (int, string) {
	i := 0
	n := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && i < 9 {
		n = n*10 + int(s[i]-'0')
		i++
	}
	if i == 0 {
		return -1, s
	}
	return n, s[i:]
}

// module is a loadable kernel module file.
type module struct{ name, path string }

// resolveModules returns the modules wanted and their dependencies in an
// order insmod can load them (dependencies first), from modules.dep.
// Modules built into the kernel are left out.
func resolveModules(modDir string, wanted []string) ([]module, error) {
	deps := map[string][]string{} // module name → dependency names
	paths := map[string]string{}
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := moduleName(file)
		paths[name] = filepath.Join(modDir, file)
		for _, dep := range strings.Fields(rest) {
			deps[name] = append(deps[name], moduleName(dep))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	builtin := map[string]bool{}
	if data, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(data)) {
			builtin[moduleName(l)] = true
		}
	}
	var out []module
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		if builtin[name] {
			return nil
		}
		p, ok := paths[name]
		if !ok {
			return fmt.Errorf("kernel module %s not found in %s", name, modDir)
		}
		if !strings.HasSuffix(p, ".ko") {
			return fmt.Errorf("kernel module %s is compressed (%s); busybox insmod needs plain .ko files", name, filepath.Base(p))
		}
		for _, d := range deps[name] {
			if err := visit(d); err != nil {
				return err
			}
		}
		out = append(out, module{name: name, path: p})
		return nil
	}
	for _, w := range wanted {
		if err := visit(strings.ReplaceAll(w, "-", "_")); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// moduleName is a module's name from its file: base name without .ko*,
// with '-' as '_' (how the kernel names modules).
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("test image input: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(h, "%s\n", path)
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("test image input %s: %w", path, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
