package testimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// The aarch64 tiny image: the tiny image's init (the same markers) with
// Debian's arm64 kernel and static busybox, fetched from the mirror apt
// uses, for booting with qemu-system-aarch64 under emulation on hosts of
// any architecture. Nothing is installed on the host and apt's
// configuration is not touched: the packages are only unpacked.
//
//	InRelease ─gpgv─▶ Packages.xz ─SHA-256─▶ linux-image-*-arm64.deb  ─dpkg-deb -x─▶ vmlinuz, modules
//	                                      └▶ busybox-static.deb       ─dpkg-deb -x─▶ bin/busybox
//	                                                          initrd.cpio ◀── init, busybox, modules

// arm64Suite is the Debian release the packages come from.
const arm64Suite = "bookworm"

// arm64Format is bumped when the image's layout or recipe changes in a
// way its inputs do not show.
const arm64Format = "tiny-arm64-1"

// Arm64Modules are the modules the aarch64 image loads (with their
// dependencies). Debian's arm64 kernel builds none of them in: virtio
// over PCI (the virt machine's devices), network and block, and the GPIO
// power key with the event device busybox acpid reads (a guest booted
// with -kernel on the virt machine has a device tree, no ACPI, and gets
// QEMU's power button as a GPIO key).
var Arm64Modules = []string{"virtio_pci", "virtio_net", "virtio_blk", "gpio_keys", "evdev"}

// arm64Kernel matches the generic arm64 kernel packages (signed or not);
// not the -rt or -cloud flavours, nor -dbg symbols.
var arm64Kernel = regexp.MustCompile(`^linux-image-[0-9][0-9.]*-[0-9]+-arm64(-unsigned)?$`)

// arm64Busybox is the package with the static busybox.
const arm64Busybox = "busybox-static"

// Arm64Image is a built aarch64 tiny image.
type Arm64Image struct {
	Kernel, Initrd string
	// KernelRelease is the kernel's release, as uname -r says it.
	KernelRelease string
}

// TinyArm64 returns the kernel and initramfs of the aarch64 tiny image,
// building it on first use (which downloads about 60 MB). It skips the
// test (fails it in CI) without dpkg-deb, depmod, xz, gpgv or the Debian
// archive keyring.
func TinyArm64(t testing.TB) (kernel, initrd string) {
	t.Helper()
	img := tinyArm64(t)
	return img.Kernel, img.Initrd
}

func tinyArm64(t testing.TB) Arm64Image {
	t.Helper()
	for _, b := range []string{"dpkg-deb", "depmod", "xz", "gpgv"} {
		testenv.NeedBinary(t, b)
	}
	testenv.NeedFile(t, debianKeyring)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	img, built, err := BuildArm64(ctx, DebianCacheDir(), t.Logf)
	if err != nil {
		t.Fatalf("aarch64 test image: %v", err)
	}
	if built {
		t.Logf("built the aarch64 test image (kernel %s) in %v", img.KernelRelease, time.Since(start).Round(100*time.Millisecond))
	}
	return img
}

// BuildArm64 returns the aarch64 tiny image in cacheDir, building it from
// the newest packages of the suite if it is not there. built tells
// whether this call built it. It asks the mirror for the suite's index
// each time (falling back on the last verified one when the mirror is
// unreachable); the packages and the image are cached by content.
func BuildArm64(ctx context.Context, cacheDir string, logf func(string, ...any)) (img Arm64Image, built bool, err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return img, false, fmt.Errorf("test image cache: %w", err)
	}
	unlock, err := debianLock(filepath.Join(cacheDir, "tiny-arm64.lock"))
	if err != nil {
		return img, false, err
	}
	defer unlock()

	mirror := aptMirror()
	keep := func(name string) bool { return name == arm64Busybox || arm64Kernel.MatchString(name) }
	pkgs, err := packageIndex(ctx, mirror, arm64Suite, "main", "arm64", filepath.Join(cacheDir, "debian-index"), keep, logf)
	if err != nil {
		return img, false, fmt.Errorf("Debian %s arm64 package index from %s: %w", arm64Suite, mirror, err)
	}
	kernelPkg, busyboxPkg, err := pickArm64(pkgs)
	if err != nil {
		return img, false, err
	}
	release := kernelRelease(kernelPkg.Name)
	key, err := arm64Key(kernelPkg, busyboxPkg)
	if err != nil {
		return img, false, err
	}
	final := filepath.Join(cacheDir, "tiny-arm64-"+key[:16])
	img = Arm64Image{Kernel: filepath.Join(final, "vmlinuz"), Initrd: filepath.Join(final, "initrd.cpio"), KernelRelease: release}
	if fileExists(img.Kernel) && fileExists(img.Initrd) {
		return img, false, nil
	}
	// Builds that died half-way (the lock is ours now).
	stale, _ := filepath.Glob(filepath.Join(cacheDir, ".tmp-tiny-arm64-*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return img, false, fmt.Errorf("remove unfinished build: %w", err)
		}
	}

	debs := filepath.Join(cacheDir, "debs-arm64")
	var files []string
	for _, p := range []debPackage{kernelPkg, busyboxPkg} {
		start := time.Now()
		f, err := fetchDeb(ctx, mirror, p, debs)
		if err != nil {
			return img, false, err
		}
		logf("aarch64 test image: %s %s (%d MB) ready in %v", p.Name, p.Version, p.Size>>20, time.Since(start).Round(100*time.Millisecond))
		files = append(files, f)
	}
	work, err := os.MkdirTemp(cacheDir, ".tmp-tiny-arm64-")
	if err != nil {
		return img, false, fmt.Errorf("test image cache: %w", err)
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "image")
	if err := buildArm64(ctx, work, out, files[0], files[1], release); err != nil {
		return img, false, fmt.Errorf("build aarch64 test image: %w", err)
	}
	for _, p := range []string{"vmlinuz", "initrd.cpio"} {
		if err := debianSyncFile(filepath.Join(out, p)); err != nil {
			return img, false, err
		}
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return img, false, err
	}
	if err := os.Rename(out, final); err != nil {
		return img, false, fmt.Errorf("store test image: %w", err)
	}
	if err := debianSyncDir(cacheDir); err != nil {
		return img, false, err
	}
	return img, true, nil
}

// pickArm64 chooses the newest generic kernel (the signed package over
// the unsigned one of the same version: both hold the same kernel and
// modules) and the newest busybox-static.
func pickArm64(pkgs []debPackage) (kernel, busybox debPackage, err error) {
	newer := func(a, b debPackage) bool { // a is newer than b
		if a.Version != b.Version {
			return versionLess(b.Version, a.Version)
		}
		if an, bn := kernelRelease(a.Name), kernelRelease(b.Name); an != bn {
			return versionLess(bn, an)
		}
		return !strings.HasSuffix(a.Name, "-unsigned") && strings.HasSuffix(b.Name, "-unsigned")
	}
	for _, p := range pkgs {
		switch {
		case p.Name == arm64Busybox:
			if busybox.Name == "" || newer(p, busybox) {
				busybox = p
			}
		case arm64Kernel.MatchString(p.Name):
			if kernel.Name == "" || newer(p, kernel) {
				kernel = p
			}
		}
	}
	if kernel.Name == "" {
		return kernel, busybox, fmt.Errorf("linux-image-*-arm64: %w", errNoPackage)
	}
	if busybox.Name == "" {
		return kernel, busybox, fmt.Errorf("%s: %w", arm64Busybox, errNoPackage)
	}
	return kernel, busybox, nil
}

// kernelRelease is the release a kernel package installs, e.g.
// 6.1.0-50-arm64 for linux-image-6.1.0-50-arm64(-unsigned).
func kernelRelease(pkg string) string {
	return strings.TrimSuffix(strings.TrimPrefix(pkg, "linux-image-"), "-unsigned")
}

// arm64Key hashes the recipe and the two packages' content (their
// SHA-256 from the signed index).
func arm64Key(kernel, busybox debPackage) (string, error) {
	recipe := map[string]any{
		"format": arm64Format, "init": initScript, "udhcpc": udhcpcScript, "power": powerScript,
		"modules": Arm64Modules, "kernel": kernel.SHA256, "busybox": busybox.SHA256,
	}
	data, err := json.Marshal(recipe)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// buildArm64 unpacks the two packages under work and writes vmlinuz and
// initrd.cpio into out.
func buildArm64(ctx context.Context, work, out, kernelDeb, busyboxDeb, release string) error {
	kroot, broot := filepath.Join(work, "kernel"), filepath.Join(work, "busybox")
	for _, x := range [][2]string{{kernelDeb, kroot}, {busyboxDeb, broot}} {
		if err := runQuiet(ctx, "dpkg-deb", "-x", x[0], x[1]); err != nil {
			return err
		}
	}
	vmlinuz := filepath.Join(kroot, "boot", "vmlinuz-"+release)
	if !fileExists(vmlinuz) {
		return fmt.Errorf("the kernel package has no boot/vmlinuz-%s", release)
	}
	busybox := filepath.Join(broot, "bin", "busybox")
	if !fileExists(busybox) {
		return fmt.Errorf("the %s package has no bin/busybox", arm64Busybox)
	}
	// The package leaves modules.dep to its maintainer script's depmod.
	modDir := filepath.Join(kroot, "lib", "modules", release)
	if !fileExists(modDir) {
		return fmt.Errorf("the kernel package has no lib/modules/%s", release)
	}
	if err := runQuiet(ctx, "depmod", "-b", kroot, release); err != nil {
		return err
	}
	mods, err := resolveModules(modDir, Arm64Modules)
	if err != nil {
		return err
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	if err := copyFile(vmlinuz, filepath.Join(out, "vmlinuz")); err != nil {
		return err
	}
	return writeInitramfs(filepath.Join(out, "initrd.cpio"), busybox, release, mods)
}

// arm64DiskFormat is bumped when the disk image's layout changes.
const arm64DiskFormat = "tiny-arm64-disk-1"

// arm64Startup is the UEFI shell script on the aarch64 disk image. The
// kernel is an EFI application: the shell runs it with the command line,
// and its EFI stub loads the initramfs named by initrd=.
const arm64Startup = "fs0:\\vmlinuz initrd=\\initrd.cpio console=ttyAMA0\r\n"

// TinyArm64Disk returns a raw disk image that boots the aarch64 tiny
// image with UEFI firmware: a FAT file system holding the kernel, the
// initramfs and a startup.nsh. There is no boot loader on it, so the
// firmware falls back on its UEFI shell, which runs startup.nsh. The
// guest boots with ACPI (no device tree), as disk images do. It skips
// the test (fails it in CI) without mtools, besides what TinyArm64 needs.
func TinyArm64Disk(t testing.TB) string {
	t.Helper()
	img := tinyArm64(t)
	testenv.NeedBinary(t, "mformat")
	testenv.NeedBinary(t, "mcopy")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	disk, err := BuildArm64Disk(ctx, DebianCacheDir(), img)
	if err != nil {
		t.Fatalf("aarch64 test disk image: %v", err)
	}
	return disk
}

// BuildArm64Disk returns the disk image of img in cacheDir, building it
// unless it is there.
func BuildArm64Disk(ctx context.Context, cacheDir string, img Arm64Image) (string, error) {
	// img's directory is named by its content.
	sum := sha256.Sum256([]byte(arm64DiskFormat + "\n" + filepath.Base(filepath.Dir(img.Kernel)) + "\n" + arm64Startup))
	final := filepath.Join(cacheDir, "tiny-arm64-disk-"+hex.EncodeToString(sum[:])[:16])
	disk := filepath.Join(final, "disk.raw")
	if fileExists(disk) {
		return disk, nil
	}
	unlock, err := debianLock(filepath.Join(cacheDir, "tiny-arm64.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fileExists(disk) {
		return disk, nil
	}
	work, err := os.MkdirTemp(cacheDir, ".tmp-tiny-arm64-")
	if err != nil {
		return "", fmt.Errorf("test image cache: %w", err)
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "image")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", err
	}
	raw := filepath.Join(out, "disk.raw")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Truncate(raw, 64<<20); err != nil {
		return "", err
	}
	startup := filepath.Join(work, "startup.nsh")
	if err := os.WriteFile(startup, []byte(arm64Startup), 0o644); err != nil {
		return "", err
	}
	if err := runQuiet(ctx, "mformat", "-i", raw, "-F", "-v", "OURO", "::"); err != nil {
		return "", err
	}
	for _, f := range [][2]string{{img.Kernel, "vmlinuz"}, {img.Initrd, "initrd.cpio"}, {startup, "startup.nsh"}} {
		if err := runQuiet(ctx, "mcopy", "-i", raw, f[0], "::"+f[1]); err != nil {
			return "", err
		}
	}
	if err := debianSyncFile(raw); err != nil {
		return "", err
	}
	if err := os.Rename(out, final); err != nil {
		return "", fmt.Errorf("store test image: %w", err)
	}
	return disk, debianSyncDir(cacheDir)
}
