// Package netns creates, enters and removes named network namespaces the
// way iproute2 does: a namespace is kept alive by a bind mount of its nsfs
// file on a plain file in a directory (by default /run/netns), so that
// `ip netns exec`, runc and nsenter can join it by path.
//
// Go schedules goroutines on any OS thread, and a network namespace belongs
// to a thread. Do therefore locks the calling goroutine to its thread for
// the duration of a switch and restores the original namespace; if the
// restore fails the thread is left locked so that Go discards it when the
// goroutine ends.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultDir is where iproute2 keeps named network namespaces.
const DefaultDir = "/run/netns"

// nsfsMagic is NSFS_MAGIC from linux/magic.h.
const nsfsMagic = 0x6e736673

// IsNamespace reports whether path is a mounted network namespace (an nsfs
// bind mount), as opposed to a missing or empty placeholder file.
func IsNamespace(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == nsfsMagic
}

// Create makes a new network namespace and binds it at path, unless path
// already holds one. A placeholder left by a crash between creating the
// file and mounting is reused. The loopback device of a new namespace is
// down; callers bring it up.
func Create(path string) (created bool, err error) {
	if IsNamespace(path) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("create netns dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o444)
	if err != nil {
		return false, fmt.Errorf("create netns file %s: %w", path, err)
	}
	f.Close()

	errc := make(chan error, 1)
	// A fresh goroutine whose thread is discarded afterwards: unshare
	// changes the thread for good, so never hand it back to the scheduler.
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind netns to %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return false, err
	}
	return true, nil
}

// Delete unmounts and removes the namespace at path. A missing path is not
// an error. The namespace itself goes away when its last user (a process or
// an open file) does.
func Delete(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// List returns the names in dir that start with prefix.
func List(dir, prefix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Do runs fn on an OS thread switched into the network namespace at path
// (the current one when path is empty). Programs started by fn with
// os/exec inherit the namespace, and files opened under /proc/sys/net are
// the namespace's.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go ends it with the goroutine.
		return errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Run runs a program in the namespace at path with stdin as its input and
// returns its combined output. Errors carry the output.
func Run(path string, stdin string, name string, args ...string) (string, error) {
	var out []byte
	err := Do(path, func() error {
		cmd := exec.Command(name, args...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// WriteSysctl sets a /proc/sys entry (dotted name, e.g.
// "net.ipv4.ip_forward") inside the namespace at path, only if it differs.
func WriteSysctl(path, name, value string) error {
	file := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	return Do(path, func() error {
		cur, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", name, err)
		}
		if strings.TrimSpace(string(cur)) == value {
			return nil
		}
		if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
			return fmt.Errorf("write sysctl %s: %w", name, err)
		}
		return nil
	})
}
