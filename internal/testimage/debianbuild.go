package testimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// debianBuild is one build of the image in a fresh directory.
type debianBuild struct {
	ctx                  context.Context
	recipe               DebianRecipe
	dir, cacheDir        string
	kver, kernel, initrd string
	logf                 func(string, ...any)
	log                  *os.File
}

func (b *debianBuild) run() error {
	var err error
	if b.log, err = os.Create(filepath.Join(b.dir, "build.log")); err != nil {
		return err
	}
	defer b.log.Close()
	rootfs := filepath.Join(b.dir, "rootfs")
	debs := filepath.Join(b.cacheDir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("package cache: %w", err)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"debootstrap", func() error {
			return b.cmd("debootstrap", "--variant=minbase", "--components=main",
				"--include="+strings.Join(debianBasePackages, ","), "--cache-dir="+debs,
				debianSuite, rootfs, debianMirror)
		}},
		{"apt-get install", func() error { return b.aptInstall(rootfs) }},
		{"configure", func() error { return debianConfigure(rootfs) }},
		{"modules", func() error {
			if err := debianCopyModules(rootfs, b.kver, b.recipe.modules()); err != nil {
				return err
			}
			return b.cmd("depmod", "-b", rootfs, b.kver)
		}},
		{"boot files", func() error {
			if err := debianCopyFile(b.kernel, filepath.Join(b.dir, "vmlinuz")); err != nil {
				return err
			}
			return debianCopyFile(b.initrd, filepath.Join(b.dir, "initrd.img"))
		}},
		{"mkfs.ext4", func() error {
			size, err := debianFSSize(rootfs)
			if err != nil {
				return err
			}
			raw := filepath.Join(b.dir, "root.raw")
			return b.cmd("mkfs.ext4", "-q", "-F", "-L", "root", "-d", rootfs, raw, fmt.Sprintf("%dM", size>>20))
		}},
		{"qemu-img convert", func() error {
			raw := filepath.Join(b.dir, "root.raw")
			if err := b.cmd("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, filepath.Join(b.dir, "disk.qcow2")); err != nil {
				return err
			}
			return os.Remove(raw)
		}},
		{"clean up", func() error { return os.RemoveAll(rootfs) }},
	}
	for _, s := range steps {
		start := time.Now()
		fmt.Fprintf(b.log, "== %s\n", s.name)
		if err := s.fn(); err != nil {
			return fmt.Errorf("build Debian test image: %s: %w", s.name, err)
		}
		b.logf("Debian test image: %s took %v", s.name, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

// aptInstall installs the recipe's packages inside the root file system. A
// policy-rc.d keeps package scripts from starting services in the chroot
// while they are installed.
func (b *debianBuild) aptInstall(rootfs string) error {
	policy := filepath.Join(rootfs, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	if err := b.cmd("chroot", rootfs, "apt-get", "update", "-q"); err != nil {
		return err
	}
	args := append([]string{rootfs, "apt-get", "install", "-y", "-q", "--no-install-recommends"}, b.recipe.packages()...)
	if err := b.cmd("chroot", args...); err != nil {
		return err
	}
	if err := b.cmd("chroot", rootfs, "apt-get", "clean"); err != nil {
		return err
	}
	return os.Remove(policy)
}

// cmd runs a program with its output going to the build log; a failure
// carries the end of the log.
func (b *debianBuild) cmd(name string, args ...string) error {
	c := exec.CommandContext(b.ctx, name, args...)
	c.Stdout, c.Stderr = b.log, b.log
	// A test killed half-way takes its build with it.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, debianTail(b.log.Name(), 3000))
	}
	return nil
}

// debianTail returns the last n bytes of a file.
func debianTail(path string, n int64) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if int64(len(data)) > n {
		data = data[int64(len(data))-n:]
	}
	return string(data)
}

// debianConfigure writes the image's configuration files and links and
// removes what must differ between instances or not ship at all.
func debianConfigure(rootfs string) error {
	for _, f := range debianFiles {
		p := filepath.Join(rootfs, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// resolv.conf may be a link to the host's; never write through it.
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	for _, l := range debianLinks {
		p := filepath.Join(rootfs, l.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Symlink(l.target, p); err != nil {
			return err
		}
	}
	// Host keys are made by cloud-init at each instance's first boot;
	// keys made here would be shared by every instance.
	keys, _ := filepath.Glob(filepath.Join(rootfs, "etc/ssh/ssh_host_*"))
	var junk []string
	junk = append(junk, keys...)
	for _, pattern := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*", "var/log/*.log", "var/lib/dbus/machine-id"} {
		m, _ := filepath.Glob(filepath.Join(rootfs, pattern))
		junk = append(junk, m...)
	}
	for _, p := range junk {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// debianFSSize is the size of the ext4 file system for a root directory:
// its content plus half again and 256 MiB of room, in whole 64 MiB.
func debianFSSize(root string) (int64, error) {
	var used int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		used += (fi.Size() + 4095) &^ 4095
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure root file system: %w", err)
	}
	const unit = 64 << 20
	size := used + used/2 + 256<<20
	return (size + unit - 1) / unit * unit, nil
}

// debianCopyFile copies a regular file, syncing it.
func debianCopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func debianSyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func debianSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
