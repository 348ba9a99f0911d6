package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/daemon"
	"github.com/ouroboros-cloud/ouro/driver/container"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// runcContainer is one entry of `runc list -f json`.
type runcContainer struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// runcList lists runc's containers, asking again while runc fails (it
// does now and then while containers come and go).
func runcList(t testing.TB) []runcContainer {
	t.Helper()
	var cs []runcContainer
	wait.ForDetail(t, 10*time.Second, "runc list", func() (bool, string) {
		var err error
		cs, err = runcContainers()
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return cs
}

// runcContainers is runcList that returns runc's complaint instead of
// failing the test: runc list fails now and then while containers come
// and go (a state directory without its state yet). It asks the OCI
// runtime the agents use, runc or crun (whose list is the same).
func runcContainers() ([]runcContainer, error) {
	cmd := exec.Command(container.PreferredRuntime(), "list", "-f", "json")
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("runc list: %v: %s", err, strings.TrimSpace(errOut.String()))
	}
	var cs []runcContainer
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &cs); err != nil {
			return nil, fmt.Errorf("runc list: %w", err)
		}
	}
	return cs, nil
}

// remains lists what is left of instance uid on the host of agent dir:
// leftovers, with runc's passing failures reported as something left (so
// a waitFor asks again).
func remains(dir, uid string) []string {
	cs, err := runcContainers()
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, c := range cs {
		if c.ID == uid {
			out = append(out, fmt.Sprintf("runc container %s (%s, pid %d)", c.ID, c.Status, c.Pid))
		}
	}
	for _, m := range mountsUnder(dir) {
		if strings.Contains(m, uid) {
			out = append(out, "mount "+m)
		}
	}
	for _, d := range cgroupDirs(uid) {
		out = append(out, "cgroup "+d)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "*", uid))
	for _, m := range matches {
		out = append(out, "directory "+m)
	}
	if pids := processesMentioning(uid); len(pids) > 0 {
		out = append(out, fmt.Sprintf("processes %v", pids))
	}
	return out
}

// runcState returns the runc container of an instance uid, or nil.
func runcState(t testing.TB, uid string) *runcContainer {
	for _, c := range runcList(t) {
		if c.ID == uid {
			return &c
		}
	}
	return nil
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// cgroupDirs lists cgroup directories named after an instance uid.
func cgroupDirs(uid string) []string {
	m, _ := filepath.Glob("/sys/fs/cgroup/*/ouro/" + uid)
	m2, _ := filepath.Glob("/sys/fs/cgroup/ouro/" + uid)
	return append(m, m2...)
}

// leftovers lists everything an instance could leave on the host.
func leftovers(_ testing.TB, agentDir, uid string) []string { return remains(agentDir, uid) }

// processesMentioning returns pids whose command line contains s.
func processesMentioning(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cleanupContainers removes every container, shim, mount and cgroup an
// agent left behind: tests kill agents, and containers outlive them.
func cleanupContainers(t testing.TB, agentDir string) {
	for _, c := range runcList(t) {
		if strings.HasPrefix(c.Bundle, agentDir) {
			exec.Command(container.PreferredRuntime(), "kill", c.ID, "KILL").Run()
			exec.Command(container.PreferredRuntime(), "delete", "--force", c.ID).Run()
			for _, d := range cgroupDirs(c.ID) {
				os.Remove(d)
			}
		}
	}
	for _, pid := range processesMentioning(agentDir) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range mountsUnder(agentDir) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	// The agent's runtime network state: its dnsmasq processes first (they
	// hold the router namespaces, whose VXLAN devices keep their sockets in
	// the host namespace and would block the next agent's VNI), then the
	// namespaces it bound; the devices inside go with them.
	run := daemon.RunDir(agentDir)
	for _, pid := range processesMentioning(run) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range mountsUnder(filepath.Join(run, "netns")) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	os.RemoveAll(run)
}

// agentNetnsDir is where the agent with data directory dir binds its
// router and instance network namespaces.
func agentNetnsDir(dir string) string { return filepath.Join(daemon.RunDir(dir), "netns") }
