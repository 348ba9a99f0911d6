// Package process finds, starts and stops the daemons of the network and
// load balancer data planes (dnsmasq, HAProxy, keepalived). A daemon is started inside a network namespace,
// forks into the background and writes a pid file; the agent that
// started it may restart, so a daemon is found again by its pid file,
// trusted only when the process's command line starts with the
// arguments that file belongs to and the process lives in the expected
// namespace.
package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// Cmdline returns the arguments of a process, nil if it is gone.
func Cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// InNamespace reports whether pid runs in the network namespace bound at
// path.
func InNamespace(pid int, path string) bool {
	a, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// Find returns the pid written in pidFile when that process still runs,
// in the namespace at netNS, with a command line starting with prefix.
func Find(pidFile, netNS string, prefix []string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || Gone(pid) {
		return 0, false
	}
	cl := Cmdline(pid)
	if len(cl) < len(prefix) || !slices.Equal(cl[:len(prefix)], prefix) {
		return 0, false
	}
	if netNS != "" && !InNamespace(pid, netNS) {
		return 0, false
	}
	return pid, true
}

// Scan returns the pids of the running processes whose command line
// contains arg (a path under a directory the caller owns), started from
// program.
func Scan(program, arg string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl := Cmdline(pid)
		if len(cl) > 0 && cl[0] == program && slices.ContainsFunc(cl[1:], func(a string) bool { return strings.Contains(a, arg) }) && !Gone(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Start runs argv in the network namespace at netNS and waits for the
// foreground process to return (the daemons fork). Its output goes to
// logFile, which the daemon may keep open.
func Start(netNS, logFile string, argv []string) error {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	defer log.Close()
	err = netns.Do(netNS, func() error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = log, log
		// A session of its own: no signal meant for the agent's process
		// group reaches it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd.Run()
	})
	if err != nil {
		out, _ := os.ReadFile(logFile)
		return fmt.Errorf("start %s: %w: %s", filepath.Base(argv[0]), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Stop terminates pid and waits until it is gone, killing it after
// grace.
func Stop(pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for !Gone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(grace)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Gone reports whether pid no longer runs; a zombie counts as gone (the
// daemons are reparented to init, which reaps them).
func Gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// WriteFile atomically replaces path with data (mode perm) unless it
// already holds it; it reports whether it wrote.
func WriteFile(path string, data []byte, perm os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return false, nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
