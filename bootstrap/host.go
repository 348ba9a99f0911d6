package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// facts is what a host is, read once per run.
type facts struct {
	// arch is Go's name of the host's architecture (amd64, arm64).
	arch string
	// os is the os-release ID and VERSION_ID ("debian 12").
	os string
	// systemd says whether systemd runs the host (else ouro's processes
	// are started directly).
	systemd bool
	// apt says whether apt-get is there to install packages.
	apt bool
}

// readFacts asks the host what it is.
func readFacts(ctx context.Context, r Runner) (facts, error) {
	out, err := r.Run(ctx, `uname -m; (. /etc/os-release 2>/dev/null; echo "$ID $VERSION_ID"); `+
		`if test -d /run/systemd/system; then echo systemd; else echo direct; fi; `+
		`if command -v apt-get >/dev/null 2>&1; then echo apt; else echo noapt; fi`, nil)
	if err != nil {
		return facts{}, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		return facts{}, fmt.Errorf("unexpected answer to the host survey: %q", out)
	}
	f := facts{os: strings.TrimSpace(lines[1]), systemd: lines[2] == "systemd", apt: lines[3] == "apt"}
	switch m := strings.TrimSpace(lines[0]); m {
	case "x86_64":
		f.arch = "amd64"
	case "aarch64", "arm64":
		f.arch = "arm64"
	default:
		return facts{}, fmt.Errorf("architecture %s: ouro is built for x86_64 (amd64) and aarch64 (arm64)", m)
	}
	return f, nil
}

// Instance drivers an agent can be limited to (Host.Drivers).
const (
	DriverContainer = "container"
	DriverVM        = "vm"
)

// Packages returns the Debian packages a host with roles needs on arch:
// servers need only certificates (etcd is embedded); agents run networks
// and load balancers, and the packages of their drivers (nil: all):
// containers need runc and crun, virtual machines QEMU. With ceph (the
// cloud uses a ceph storage pool) every host needs the ceph tools
// (servers check pools and fence lost hosts, agents map images) and
// agents QEMU's rbd driver.
func Packages(arch string, roles, drivers []string, ceph bool) []string {
	pkgs := []string{"ca-certificates"}
	if ceph {
		pkgs = append(pkgs, "ceph-common")
	}
	if !slices.Contains(roles, RoleAgent) {
		return pkgs
	}
	if ceph {
		pkgs = append(pkgs, "qemu-block-extra")
	}
	all := len(drivers) == 0
	if all || slices.Contains(drivers, DriverContainer) {
		pkgs = append(pkgs, "runc", "crun")
	}
	pkgs = append(pkgs, "iproute2", "nftables", "dnsmasq-base", "haproxy", "keepalived")
	if all || slices.Contains(drivers, DriverVM) {
		pkgs = append(pkgs, "qemu-utils", "genisoimage")
		if arch == "arm64" {
			pkgs = append(pkgs, "qemu-system-arm", "qemu-efi-aarch64")
		} else {
			pkgs = append(pkgs, "qemu-system-x86")
		}
	}
	return pkgs
}

// missingPackages returns those of pkgs dpkg does not have installed.
func missingPackages(ctx context.Context, r Runner, pkgs []string) ([]string, error) {
	out, err := r.Run(ctx, sh(append([]string{"dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n"}, pkgs...)...)+" 2>/dev/null; true", nil)
	if err != nil {
		return nil, err
	}
	installed := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasPrefix(f[1], "ii") {
			installed[strings.SplitN(f[0], ":", 2)[0]] = true
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !installed[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// installPackages installs pkgs with apt-get and stops the system
// services two of them start (ouro runs its own HAProxy and keepalived in
// namespaces).
func installPackages(ctx context.Context, r Runner, f facts, pkgs []string) error {
	if !f.apt {
		return fmt.Errorf("missing %s and there is no apt-get to install them", strings.Join(pkgs, ", "))
	}
	cmd := "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && " +
		sh(append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
	if _, err := r.Run(ctx, cmd, nil); err != nil {
		return fmt.Errorf("install %s: %w", strings.Join(pkgs, ", "), err)
	}
	if f.systemd {
		for _, svc := range []string{"haproxy", "keepalived"} {
			if slices.Contains(pkgs, svc) {
				r.Run(ctx, sh("systemctl", "disable", "--now", svc)+" >/dev/null 2>&1; true", nil)
			}
		}
	}
	return nil
}

// fileSum returns the SHA-256 of a local file.
func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// remoteSum returns the SHA-256 of a file on the host, "" if it has none.
func remoteSum(ctx context.Context, r Runner, p string) (string, error) {
	out, err := r.Run(ctx, "if test -f "+quote(p)+"; then sha256sum "+quote(p)+"; fi", nil)
	if err != nil {
		return "", err
	}
	if f := strings.Fields(out); len(f) > 0 {
		return f[0], nil
	}
	return "", nil
}

// upload writes content to p on the host (mode 0755 for binaries, else
// 0600), through a temporary file and a rename, so a crash never leaves
// half a file under its name.
func upload(ctx context.Context, r Runner, p string, content io.Reader, mode string) error {
	tmp := p + ".new"
	// Directories are made 0755 (the agent's containers, unprivileged
	// host users, must pass through the data directory to their root
	// file systems); the file is private until chmod says otherwise.
	cmd := "umask 022 && mkdir -p " + quote(path.Dir(p)) + " && umask 077 && cat > " + quote(tmp) +
		" && chmod " + mode + " " + quote(tmp) + " && mv -f " + quote(tmp) + " " + quote(p)
	if _, err := r.Run(ctx, cmd, content); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// readRemote returns the content of p on the host, and whether it exists.
func readRemote(ctx context.Context, r Runner, p string) (string, bool, error) {
	out, err := r.Run(ctx, "if test -f "+quote(p)+"; then echo y; cat "+quote(p)+"; else echo n; fi", nil)
	if err != nil {
		return "", false, err
	}
	flag, rest, _ := strings.Cut(out, "\n")
	return rest, flag == "y", nil
}

// ensureFile makes p hold content; it reports whether it changed (or, in
// check mode, would change).
func ensureFile(ctx context.Context, r Runner, p, content, mode string, check bool) (bool, error) {
	have, ok, err := readRemote(ctx, r, p)
	if err != nil {
		return false, err
	}
	if ok && have == content {
		return false, nil
	}
	if check {
		return true, nil
	}
	return true, upload(ctx, r, p, bytes.NewReader([]byte(content)), mode)
}
