package testimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// DebianCmdline is the kernel command line the Debian test image boots
// with: the root file system is the whole first virtio disk (no partition
// table, no boot loader) and the console is the first serial port.
const DebianCmdline = "root=/dev/vda rw console=ttyS0"

// DebianDefaultUser is the user cloud-init makes and installs SSH keys for.
const DebianDefaultUser = "debian"

// EnvTestImageCache overrides where built test images are cached.
const EnvTestImageCache = "OURO_TESTIMAGE_CACHE"

// debianDefaultCache is where test images are kept between test runs,
// outside the repository.
const debianDefaultCache = "/var/cache/ouro-testimages"

// The recipe of the Debian image. Every part of it goes into the cache
// key, so changing any of them builds a new image.
const (
	// debianRecipeVersion changes when the build steps change in a way
	// the rest of the recipe does not show.
	debianRecipeVersion = "1"
	debianSuite         = "bookworm"
	debianMirror        = "http://deb.debian.org/debian"
)

// debianBasePackages are added to debootstrap's minbase: an init system
// with udev and module loading, DHCP through ifupdown (cloud-init renders
// its network config for it) and resize2fs for growing the root file
// system to the instance's disk.
var debianBasePackages = []string{
	"systemd-sysv", "udev", "kmod",
	"ifupdown", "isc-dhcp-client", "iproute2", "netbase",
	"e2fsprogs", "ca-certificates",
}

// debianPackages are installed with apt inside the new root file system
// afterwards, because debootstrap's own resolver cannot follow all of
// their dependencies (virtual packages): cloud-init, and the SSH server
// and sudo its default user needs.
var debianPackages = []string{"cloud-init", "openssh-server", "sudo"}

// debianModules are the host kernel's modules copied into the image (with
// the modules they depend on): the root file system lives on the image,
// so everything the kernel loads after the initramfs hands over must be
// there — virtio devices, the seed's file systems, the CD-ROM.
var debianModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_console",
	"virtio_rng", "virtio_balloon", "ext4", "isofs", "vfat", "nls_ascii",
	"nls_cp437", "nls_utf8", "sr_mod", "sd_mod", "cdrom", "ata_piix",
	"ata_generic", "e1000", "af_packet", "9p", "9pnet_virtio", "tun", "bridge",
}

// debianFiles are written into the root file system after debootstrap.
var debianFiles = []struct {
	path, content string
}{
	{"etc/fstab", "LABEL=root / ext4 rw,errors=remount-ro 0 1\n"},
	{"etc/hostname", "debian\n"},
	{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
	// dhclient fills it in once the NIC is up.
	{"etc/resolv.conf", ""},
	// systemd makes a new machine ID at the first boot of each instance.
	{"etc/machine-id", ""},
	// The instance's own data comes from a NoCloud seed (a volume labelled
	// cidata) or, failing that, from the EC2-compatible metadata service.
	// The image has no locales generated: C.UTF-8 is built into the C
	// library, so cloud-init need not generate en_US.UTF-8 (and fail).
	{"etc/default/locale", "LANG=C.UTF-8\n"},
	{"etc/cloud/cloud.cfg.d/90_ouro.cfg", `datasource_list: [ NoCloud, Ec2, None ]
locale: C.UTF-8
datasource:
  Ec2:
    strict_id: false
    max_wait: 30
    timeout: 5
    metadata_urls: [ "http://169.254.169.254" ]
`},
	// Run cloud-init with the list above instead of ds-identify's guess.
	{"etc/cloud/ds-identify.cfg", "policy: enabled\n"},
	{"etc/network/interfaces", "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n"},
}

// debianLinks are symbolic links made in the root file system.
var debianLinks = []struct{ path, target string }{
	// A login prompt on the serial console.
	{"etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service", "/lib/systemd/system/serial-getty@.service"},
	// Nobody answers first-boot questions on an instance's console.
	{"etc/systemd/system/systemd-firstboot.service", "/dev/null"},
}

// DebianRecipe is a variant of the Debian image: what it adds to the
// base recipe. Each variant has its own cache key, so variants never
// replace each other's images.
type DebianRecipe struct {
	// Name tells the variant's images apart in the cache ("" is the
	// plain test image).
	Name string
	// Packages are installed with apt after the base packages.
	Packages []string
	// Modules are host kernel modules copied in after the base modules.
	Modules []string
}

// DebianPlain is the plain Debian test image: cloud-init, sshd, sudo.
var DebianPlain = DebianRecipe{}

// DebianOuroHost is the Debian image of a machine a nested Ouroboros
// cloud is bootstrapped onto (examples/ouroboros): besides the plain
// image, what an agent running containers needs (bootstrap.Packages for
// an agent with drivers [container]) and the kernel modules of its
// networks — bridges, veth pairs, VXLAN, the nftables expressions its
// rules use, connection tracking and NAT — and of overlay mounts. Guests
// have no package mirror: everything is in the image.
var DebianOuroHost = DebianRecipe{
	Name: "ouro-host",
	Packages: []string{"runc", "crun", "iproute2", "nftables", "dnsmasq-base", "haproxy", "keepalived",
		"ca-certificates"},
	Modules: []string{"overlay", "veth", "vxlan", "udp_tunnel", "ip6_udp_tunnel", "br_netfilter", "dummy", "xfrm_user",
		"nf_tables", "nf_conntrack", "nf_nat", "nf_defrag_ipv4", "nf_defrag_ipv6", "nf_reject_ipv4", "nf_reject_ipv6",
		// Every nftables expression a rule might use, in each family the
		// agent's tables use (inet, ip, bridge, netdev): a missing one
		// fails the whole ruleset with "No such file or directory".
		"nft_chain_nat", "nft_compat", "nft_connlimit", "nft_ct", "nft_dup_netdev", "nft_fib", "nft_fib_inet",
		"nft_fib_netdev", "nft_fwd_netdev", "nft_hash", "nft_limit", "nft_log", "nft_masq", "nft_nat", "nft_numgen",
		"nft_objref", "nft_quota", "nft_redir", "nft_reject", "nft_reject_inet", "nft_socket", "nft_queue",
		"nft_fib_ipv4", "nft_fib_ipv6", "nft_reject_ipv4", "nft_reject_ipv6", "nft_dup_ipv4", "nft_dup_ipv6",
		"nft_meta_bridge", "nft_reject_bridge", "nf_conntrack_bridge"},
}

func (r DebianRecipe) packages() []string { return append(slices.Clone(debianPackages), r.Packages...) }
func (r DebianRecipe) modules() []string  { return append(slices.Clone(debianModules), r.Modules...) }

// cacheName is the name of the variant's images in the cache.
func (r DebianRecipe) cacheName() string {
	if r.Name == "" {
		return "debian-" + debianSuite
	}
	return "debian-" + debianSuite + "-" + r.Name
}

// DebianImage is a built Debian cloud-init test image: a qcow2 disk
// holding an ext4 root file system (no partition table, no boot loader)
// and the kernel and initramfs it boots with, using DebianCmdline.
type DebianImage struct {
	Disk, Kernel, Initrd string
	// KernelVersion is the host kernel release the image was built for.
	KernelVersion string
}

// Debian returns the Debian cloud-init test image, building it the first
// time (which takes minutes and needs root, debootstrap, mkfs.ext4,
// qemu-img, depmod, the host's Debian kernel and access to the Debian
// mirror). The image is cached outside the repository and shared by every
// test; tests must not write to it (use a qcow2 overlay).
func Debian(t testing.TB) (disk, kernel, initrd string) {
	t.Helper()
	return DebianVariant(t, DebianPlain)
}

// DebianVariant returns the Debian image of recipe r, building it the
// first time, as Debian does.
func DebianVariant(t testing.TB, r DebianRecipe) (disk, kernel, initrd string) {
	t.Helper()
	testenv.NeedRoot(t)
	for _, b := range []string{"debootstrap", "mkfs.ext4", "qemu-img", "depmod"} {
		testenv.NeedBinary(t, b)
	}
	if _, _, err := debianHostKernel(); err != nil {
		testenv.NeedFile(t, "/boot/vmlinuz-*")
	}
	start := time.Now()
	img, built, err := BuildDebianRecipe(context.Background(), DebianCacheDir(), r, t.Logf)
	if err != nil {
		t.Fatalf("Debian test image: %v", err)
	}
	if built {
		t.Logf("built the Debian test image %q in %v: %s", r.cacheName(), time.Since(start).Round(time.Second), img.Disk)
	}
	return img.Disk, img.Kernel, img.Initrd
}

// DebianCacheDir is the directory test images are cached in:
// $OURO_TESTIMAGE_CACHE or /var/cache/ouro-testimages.
func DebianCacheDir() string {
	if d := os.Getenv(EnvTestImageCache); d != "" {
		return d
	}
	return debianDefaultCache
}

// BuildDebian returns the cached Debian test image in cacheDir, building
// it if it is not there yet. built tells whether this call built it. A
// lock file makes concurrent callers (other test processes) wait for one
// build; the finished image appears under its final name in one rename,
// so a crash leaves only a build directory that the next build removes.
func BuildDebian(ctx context.Context, cacheDir string, logf func(format string, args ...any)) (img DebianImage, built bool, err error) {
	return BuildDebianRecipe(ctx, cacheDir, DebianPlain, logf)
}

// BuildDebianRecipe is BuildDebian for the variant r.
func BuildDebianRecipe(ctx context.Context, cacheDir string, r DebianRecipe, logf func(format string, args ...any)) (img DebianImage, built bool, err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	kernel, kver, err := debianHostKernel()
	if err != nil {
		return img, false, err
	}
	initrd := filepath.Join("/boot", "initrd.img-"+kver)
	key, err := debianKey(r, kernel, initrd, kver)
	if err != nil {
		return img, false, err
	}
	final := filepath.Join(cacheDir, r.cacheName()+"-"+key[:16])
	img = DebianImage{
		Disk:          filepath.Join(final, "disk.qcow2"),
		Kernel:        filepath.Join(final, "vmlinuz"),
		Initrd:        filepath.Join(final, "initrd.img"),
		KernelVersion: kver,
	}
	if debianComplete(img) {
		return img, false, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return img, false, fmt.Errorf("test image cache: %w", err)
	}
	unlock, err := debianLock(final + ".lock")
	if err != nil {
		return img, false, err
	}
	defer unlock()
	if debianComplete(img) { // another process built it while we waited
		return img, false, nil
	}
	// Builds that died half-way left directories only this lock's holder
	// can own.
	stale, _ := filepath.Glob(final + ".build-*")
	for _, d := range stale {
		logf("removing an unfinished build: %s", d)
		if err := os.RemoveAll(d); err != nil {
			return img, false, fmt.Errorf("remove unfinished build: %w", err)
		}
	}
	work, err := os.MkdirTemp(cacheDir, filepath.Base(final)+".build-*")
	if err != nil {
		return img, false, fmt.Errorf("test image cache: %w", err)
	}
	defer os.RemoveAll(work) // gone after the rename on success
	b := &debianBuild{ctx: ctx, recipe: r, dir: work, kver: kver, kernel: kernel, initrd: initrd, cacheDir: cacheDir, logf: logf}
	if err := b.run(); err != nil {
		// Keep the logs of a failed build for a human to read.
		failed := final + ".failed.log"
		logs := debianTail(filepath.Join(work, "build.log"), 1<<20) + "\n== debootstrap.log\n" +
			debianTail(filepath.Join(work, "rootfs/debootstrap/debootstrap.log"), 1<<20)
		if werr := os.WriteFile(failed, []byte(logs), 0o644); werr == nil {
			err = fmt.Errorf("%w\n(logs in %s)", err, failed)
		}
		return img, false, err
	}
	// The image must be on disk before its name says it is complete.
	for _, p := range []string{"disk.qcow2", "vmlinuz", "initrd.img"} {
		if err := debianSyncFile(filepath.Join(work, p)); err != nil {
			return img, false, err
		}
	}
	if err := os.Chmod(work, 0o755); err != nil {
		return img, false, err
	}
	if err := os.Rename(work, final); err != nil {
		return img, false, fmt.Errorf("store test image: %w", err)
	}
	if err := debianSyncDir(cacheDir); err != nil {
		return img, false, err
	}
	return img, true, nil
}

// debianComplete reports whether every file of a built image is there.
func debianComplete(img DebianImage) bool {
	for _, p := range []string{img.Disk, img.Kernel, img.Initrd} {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// debianLock takes an exclusive lock on path, waiting for other holders.
func debianLock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("test image lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("test image lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// debianHostKernel finds the newest Debian kernel in /boot that has an
// initramfs beside it, and its release.
func debianHostKernel() (path, release string, err error) {
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	var releases []string
	for _, k := range kernels {
		rel := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/boot", "initrd.img-"+rel)); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("/lib/modules", rel, "modules.dep")); err != nil {
			continue
		}
		releases = append(releases, rel)
	}
	if len(releases) == 0 {
		return "", "", errors.New("no /boot/vmlinuz-* with an initrd.img and modules; install linux-image-amd64")
	}
	slices.SortFunc(releases, debianCompareVersions)
	rel := releases[len(releases)-1]
	return filepath.Join("/boot", "vmlinuz-"+rel), rel, nil
}

// debianCompareVersions orders kernel releases such as 6.1.0-9-amd64 and
// 6.1.0-10-amd64 by their numbers.
func debianCompareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		var na, nb int
		_, ea := fmt.Sscanf(pa[i], "%d", &na)
		_, eb := fmt.Sscanf(pb[i], "%d", &nb)
		if ea == nil && eb == nil && na != nb {
			return na - nb
		}
		if c := strings.Compare(pa[i], pb[i]); (ea != nil || eb != nil) && c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

// debianKey hashes the whole recipe: the build steps' version, suite,
// mirror, packages, files, links, modules, command line and the exact
// kernel and initramfs.
func debianKey(r DebianRecipe, kernel, initrd, kver string) (string, error) {
	h := sha256.New()
	recipe := map[string]any{
		"version": debianRecipeVersion, "suite": debianSuite, "mirror": debianMirror,
		"base": debianBasePackages, "packages": debianPackages, "modules": debianModules, "cmdline": DebianCmdline,
		"kernel": kver,
	}
	// The plain image's key is what it was before there were variants.
	if r.Name != "" {
		recipe["variant"], recipe["packages"], recipe["modules"] = r.Name, r.packages(), r.modules()
	}
	var files, links []string
	for _, f := range debianFiles {
		files = append(files, f.path+"\x00"+f.content)
	}
	for _, l := range debianLinks {
		links = append(links, l.path+"\x00"+l.target)
	}
	recipe["files"], recipe["links"] = files, links
	if err := json.NewEncoder(h).Encode(recipe); err != nil {
		return "", err
	}
	for _, p := range []string{kernel, initrd} {
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
