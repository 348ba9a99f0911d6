package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUTime implements driver.UsageReader: the CPU time the processes of
// container id have used, from its cgroup (/ouro/<id>, see spec.go):
// cpu.stat usage_usec on cgroup v2, cpuacct.usage on cgroup v1.
func (d *Driver) CPUTime(ctx context.Context, id string) (time.Duration, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	t, err := cgroupCPUTime(cgroupRoot, id)
	if err != nil {
		return 0, fmt.Errorf("CPU time of container %s: %w", id, err)
	}
	return t, nil
}

// cgroupCPUTime reads the CPU time of cgroup ouro/<id> under root (where
// the cgroup file systems are mounted). A pure cgroup v2 host has
// cgroup.controllers at its root; otherwise the v1 cpuacct hierarchy
// counts (on hybrid hosts too), with the unified hierarchy as a fallback.
func cgroupCPUTime(root, id string) (time.Duration, error) {
	if fileExists(filepath.Join(root, "cgroup.controllers")) {
		return readUsageUsec(filepath.Join(root, "ouro", id, "cpu.stat"))
	}
	v1, _ := filepath.Glob(filepath.Join(root, "*", "ouro", id, "cpuacct.usage"))
	if len(v1) > 0 {
		data, err := os.ReadFile(v1[0])
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", v1[0], err)
		}
		return time.Duration(ns), nil
	}
	t, err := readUsageUsec(filepath.Join(root, "unified", "ouro", id, "cpu.stat"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("no cgroup of the container (is it running?): %w", err)
	}
	return t, err
}

// readUsageUsec reads usage_usec from a cgroup v2 cpu.stat file.
func readUsageUsec(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != "usage_usec" {
			continue
		}
		us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: usage_usec: %w", path, err)
		}
		return time.Duration(us) * time.Microsecond, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fmt.Errorf("%s has no usage_usec", path)
}
