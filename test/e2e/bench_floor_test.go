package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runtimeFloor times the OCI runtime alone on a bundle prepared as the
// driver prepared the instance's: the instance's own config.json
// (namespaces, user namespace mapping, seccomp filter, mounts), an
// overlay of the same layers with a fresh upper directory owned as the
// instance's, under a cgroup of its own. It times `<runtime> run -d` by
// hand, from the call until it returns (the container's process runs
// then), and removes the container after. runtime is the program the
// driver recorded for the instance.
func runtimeFloor(b *testing.B, instDir, name string) (time.Duration, string) {
	b.Helper()
	rt := "runc"
	if data, err := os.ReadFile(filepath.Join(instDir, "runtime")); err == nil {
		rt = strings.TrimSpace(string(data))
	}
	var cfg map[string]any
	data, err := os.ReadFile(filepath.Join(instDir, "bundle", "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		b.Fatal(err)
	}
	lower := overlayLower(b, filepath.Join(instDir, "rootfs"))
	dir := filepath.Join(instDir, "floor")
	upper, work, rootfs, bundle := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs"), filepath.Join(dir, "bundle")
	for _, d := range []string{upper, work, rootfs, bundle} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			b.Fatal(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(instDir, "upper"), &st); err != nil {
		b.Fatal(err)
	}
	if err := os.Chown(upper, int(st.Uid), int(st.Gid)); err != nil {
		b.Fatal(err)
	}
	os.Chmod(upper, 0o755)
	if err := syscall.Mount("overlay", rootfs, "overlay", 0,
		fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)); err != nil {
		b.Fatalf("mount the floor's overlay: %v", err)
	}
	defer syscall.Unmount(rootfs, syscall.MNT_DETACH)
	cfg["root"] = map[string]any{"path": rootfs}
	cfg["linux"].(map[string]any)["cgroupsPath"] = "/ouro/" + name
	out, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), out, 0o600); err != nil {
		b.Fatal(err)
	}
	// The container's process inherits the runtime's stdout and stderr:
	// a file, not a pipe that it would hold open.
	logPath := filepath.Join(dir, "run.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(rt, "run", "-d", "--bundle", bundle, "--pid-file", filepath.Join(dir, "pid"), name)
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	err = cmd.Run()
	took := time.Since(t0)
	if err != nil {
		msg, _ := os.ReadFile(logPath)
		b.Fatalf("%s run -d: %v: %s", rt, err, msg)
	}
	if msg, err := exec.Command(rt, "delete", "--force", name).CombinedOutput(); err != nil {
		b.Fatalf("%s delete --force: %v: %s", rt, err, msg)
	}
	return took, filepath.Base(rt)
}

// overlayLower returns the lowerdir option of the overlay mounted at
// target, from /proc/self/mountinfo.
func overlayLower(b *testing.B, target string) string {
	b.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] != target {
			continue
		}
		for _, opt := range strings.Split(fields[len(fields)-1], ",") {
			if v, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				return v
			}
		}
	}
	b.Fatalf("no overlay with a lowerdir mounted at %s", target)
	return ""
}
