package container

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts the instance's root filesystem at p.rootfs unless
// something is already mounted there. lowers are the layer directories,
// top-most first.
func mountOverlay(p instancePaths, lowers []string) error {
	mounted, err := isMounted(p.rootfs)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	for _, dir := range []string{p.upper, p.work, p.rootfs} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("mount rootfs: %w", err)
		}
	}
	if len(lowers) == 0 {
		return errors.New("mount rootfs: no image layers")
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"), p.upper, p.work)
	if len(data) >= unix.Getpagesize() {
		return fmt.Errorf("mount rootfs: overlay options are %d bytes, the kernel takes fewer than %d (too many layers or too long a data dir)", len(data), unix.Getpagesize())
	}
	if err := unix.Mount("overlay", p.rootfs, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", p.rootfs, err)
	}
	return nil
}

// unmountAll unmounts everything mounted at target (mounts can stack).
// It is a no-op if nothing is mounted there.
func unmountAll(target string) error {
	for range 16 {
		mounted, err := isMounted(target)
		if err != nil {
			return err
		}
		if !mounted {
			return nil
		}
		if err := unix.Unmount(target, 0); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				continue // gone meanwhile; check again
			}
			if errors.Is(err, unix.EBUSY) {
				// Something still holds it (a process that left the
				// container's mount namespace alive); detach it so it
				// goes away with its last user.
				if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
					return fmt.Errorf("unmount %s: %w", target, err)
				}
				continue
			}
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", target)
}

// isMounted reports whether target is a mount point, per
// /proc/self/mountinfo.
func isMounted(target string) (bool, error) {
	points, err := mountPoints()
	if err != nil {
		return false, err
	}
	target = filepath.Clean(target)
	for _, p := range points {
		if p == target {
			return true, nil
		}
	}
	return false, nil
}

// mountPoints lists the mount points of this process's mount namespace.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		points = append(points, unescapeMountPath(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return points, nil
}

// unescapeMountPath undoes the octal escapes (\040 for space, ...) of
// /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// overlaySupported reports whether the kernel knows overlayfs.
func overlaySupported() (bool, error) {
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[len(fields)-1] == "overlay" {
			return true, nil
		}
	}
	return false, nil
}

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupDirs returns the cgroup directories of container id that exist:
// /sys/fs/cgroup/<controller>/ouro/<id> on cgroup v1 (and the hybrid
// unified hierarchy), /sys/fs/cgroup/ouro/<id> on cgroup v2.
func cgroupDirs(id string) []string {
	var dirs []string
	candidates, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "ouro", id))
	candidates = append(candidates, filepath.Join(cgroupRoot, "ouro", id))
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			dirs = append(dirs, c)
		}
	}
	return dirs
}

// removeCgroups removes the cgroup directories runc left for id, children
// first. Cgroup directories are removed with rmdir, never by deleting
// their files.
func removeCgroups(id string) error {
	var errs []error
	for _, dir := range cgroupDirs(id) {
		if err := rmdirTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func rmdirTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return nil
}
