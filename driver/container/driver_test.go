package container

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

func TestContainerLifecycle(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	dir := t.TempDir()
	d := newTestDriver(t, dir, blobs)
	id := uniqueID(t)
	spec := driver.Spec{
		ID:        id,
		Name:      "web-1",
		Image:     busyboxImage(t, blobs),
		Command:   []string{"sh", "-c", "echo hello; echo $IMAGE_VAR$SPEC_VAR; exec sleep 1000"},
		Env:       []string{"SPEC_VAR=2"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 64},
	}
	createContainer(t, d, spec)

	if st := inspect(t, d, id); st.State != driver.StateCreated {
		t.Fatalf("after Create: state %q, want created", st.State)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := inspect(t, d, id)
	if st.State != driver.StateRunning || st.Pid <= 0 || st.StartedAt.IsZero() {
		t.Fatalf("after Start: %+v, want running with a pid and start time", st)
	}
	pid := st.Pid
	wait.For(t, 10*time.Second, "hello and env in the console log", func() bool {
		data, _ := os.ReadFile(d.LogPath(id))
		return strings.Contains(string(data), "hello\n12\n")
	})

	t.Run("exec", func(t *testing.T) {
		if code, out := execOut(t, d, id, "cat", "/etc/hostname"); code != 0 || out != "web-1" {
			t.Errorf("cat /etc/hostname = %d %q, want 0 web-1", code, out)
		}
		if code, _ := execOut(t, d, id, "sh", "-c", "exit 3"); code != 3 {
			t.Errorf("exit 3 gave code %d", code)
		}
		if code, out := execOut(t, d, id, "hostname"); code != 0 || out != "web-1" {
			t.Errorf("hostname = %d %q, want web-1", code, out)
		}
	})
	t.Run("whiteouts", func(t *testing.T) {
		if code, _ := execOut(t, d, id, "test", "-e", "/etc/removed"); code == 0 {
			t.Error("/etc/removed is visible despite its whiteout")
		}
		if code, out := execOut(t, d, id, "ls", "/data"); code != 0 || out != "b" {
			t.Errorf("ls /data = %d %q, want only b (opaque dir)", code, out)
		}
		if code, out := execOut(t, d, id, "cat", "/etc/passwd"); code != 0 || !strings.Contains(out, "worker") {
			t.Errorf("cat /etc/passwd = %d %q: lower layer content missing", code, out)
		}
	})
	t.Run("cgroup limits", func(t *testing.T) {
		want := map[string]int64{"memory": 64 << 20, "cpu": 100000}
		for ctrl, v := range want {
			got, ok := cgroupLimit(t, id, ctrl)
			if !ok {
				t.Errorf("no %s cgroup found for %s", ctrl, id)
				continue
			}
			if got != v {
				t.Errorf("%s limit = %d, want %d", ctrl, got, v)
			}
		}
	})

	// Write to the root filesystem; it must survive stop and start.
	if code, _ := execOut(t, d, id, "sh", "-c", "echo kept > /persisted"); code != 0 {
		t.Fatalf("writing /persisted failed: %d", code)
	}

	t.Run("adopt after agent restart", func(t *testing.T) {
		d2 := newTestDriver(t, dir, blobs)
		st := inspect(t, d2, id)
		if st.State != driver.StateRunning || st.Pid != pid {
			t.Fatalf("new driver sees %+v, want running with pid %d", st, pid)
		}
		if err := d2.Start(ctx, id); err != nil {
			t.Fatalf("Start on running container: %v", err)
		}
		if st := inspect(t, d2, id); st.Pid != pid {
			t.Fatalf("Start on a running container restarted it: pid %d, was %d", st.Pid, pid)
		}
		ids, err := d2.List(ctx)
		if err != nil || len(ids) != 1 || ids[0] != id {
			t.Fatalf("List = %v, %v; want [%s]", ids, err, id)
		}
	})

	// sh as pid 1 ignores SIGTERM: Stop must fall back to SIGKILL.
	if err := d.Stop(ctx, id, 500*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st = inspect(t, d, id)
	if st.State != driver.StateStopped || !st.HasExitCode || st.ExitCode != 128+int(syscall.SIGKILL) {
		t.Fatalf("after Stop: %+v, want stopped with exit code 137", st)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("container process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if mounts := mountsUnder(t, dir); len(mounts) != 0 {
		t.Errorf("mounts left after Stop: %v", mounts)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	st = inspect(t, d, id)
	if st.State != driver.StateRunning || st.Pid == pid {
		t.Fatalf("after restart: %+v, want running with a new pid", st)
	}
	if code, out := execOut(t, d, id, "cat", "/persisted"); code != 0 || out != "kept" {
		t.Errorf("cat /persisted after restart = %d %q, want kept", code, out)
	}

	if err := d.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertGone(t, d, dir, id)
	if err := d.Delete(ctx, id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestContainerExitCode(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	d := newTestDriver(t, t.TempDir(), blobs)
	img := busyboxImage(t, blobs)
	img.Config.Entrypoint = []string{"sh", "-c"}
	img.Config.Cmd = []string{"echo bye; exit 7"}
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{ID: id, Name: "exits", Image: img})
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var st driver.Status
	wait.For(t, 10*time.Second, "the exit code", func() bool {
		st = inspect(t, d, id)
		return st.HasExitCode
	})
	if st.State != driver.StateStopped || st.ExitCode != 7 || st.FinishedAt.IsZero() {
		t.Errorf("Inspect = %+v, want stopped with exit code 7", st)
	}
	wait.For(t, 10*time.Second, "runc to forget the container", func() bool {
		_, found, err := d.runtime.state(ctx, id)
		return err == nil && !found
	})
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("Stop of an exited container: %v", err)
	}
	if data, _ := os.ReadFile(d.LogPath(id)); !strings.Contains(string(data), "bye") {
		t.Errorf("console log %q lacks the output", data)
	}
}

func TestContainerStartFailure(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	d := newTestDriver(t, t.TempDir(), blobs)
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{ID: id, Image: busyboxImage(t, blobs), Command: []string{"/no/such/program"}})
	err := d.Start(ctx, id)
	if err == nil {
		t.Fatal("Start of a missing program succeeded")
	}
	t.Logf("Start error: %v", err)
	if !strings.Contains(err.Error(), "/no/such/program") {
		t.Errorf("Start error %q does not name the program", err)
	}
}

func TestContainerInputErrors(t *testing.T) {
	ctx := context.Background()
	blobs := &blobMap{}
	d, err := New(Config{Dir: t.TempDir(), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../x", "A", "a/b", "a b", strings.Repeat("a", 200)} {
		if err := d.Start(ctx, id); err == nil || errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Start(%q) = %v, want an invalid id error", id, err)
		}
	}
	if _, err := d.Inspect(ctx, "unknown"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect unknown = %v, want ErrNotFound", err)
	}
	if err := d.Start(ctx, "unknown"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Start unknown = %v, want ErrNotFound", err)
	}
	if err := d.Create(ctx, driver.Spec{ID: "x", Image: api.ImageSpec{Layers: []api.Blob{{Digest: "sha256:00"}}}}); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("Create without a command = %v, want a no command error", err)
	}
	if ids, err := d.List(ctx); err != nil || len(ids) != 0 {
		t.Errorf("List = %v, %v; want nothing", ids, err)
	}
	for _, cfg := range []Config{{Blobs: blobs}, {Dir: "rel", Blobs: blobs}, {Dir: "/a,b", Blobs: blobs}, {Dir: "/x"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad config", cfg)
		}
	}
}

func inspect(t *testing.T, d *Driver, id string) driver.Status {
	t.Helper()
	st, err := d.Inspect(context.Background(), id)
	if err != nil {
		t.Fatalf("Inspect %s: %v", id, err)
	}
	return st
}

// assertGone checks that nothing of container id is left on the host.
func assertGone(t *testing.T, d *Driver, dir, id string) {
	t.Helper()
	if _, found, err := d.runtime.state(context.Background(), id); err != nil || found {
		t.Errorf("runc still knows %s (err %v)", id, err)
	}
	if mounts := mountsUnder(t, dir); len(mounts) != 0 {
		t.Errorf("mounts left under %s: %v", dir, mounts)
	}
	if dirs := cgroupDirs(id); len(dirs) != 0 {
		t.Errorf("cgroups left: %v", dirs)
	}
	if _, err := os.Stat(d.instanceDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("instance dir left (stat: %v)", err)
	}
	if _, err := d.Inspect(context.Background(), id); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect after Delete = %v, want ErrNotFound", err)
	}
}

// mountsUnder lists mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	points, err := mountPoints()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range points {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

// cgroupLimit reads the memory limit (bytes) or CPU quota (µs per
// period) of container id from the cgroup filesystem, v1 or v2.
func cgroupLimit(t *testing.T, id, ctrl string) (int64, bool) {
	t.Helper()
	files := map[string][]string{
		"memory": {"memory/ouro/" + id + "/memory.limit_in_bytes", "ouro/" + id + "/memory.max"},
		"cpu":    {"cpu/ouro/" + id + "/cpu.cfs_quota_us", "cpu,cpuacct/ouro/" + id + "/cpu.cfs_quota_us", "ouro/" + id + "/cpu.max"},
	}
	for _, f := range files[ctrl] {
		fh, err := os.Open(filepath.Join(cgroupRoot, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan()
		fh.Close()
		first, _, _ := strings.Cut(sc.Text(), " ") // cpu.max: "<quota> <period>"
		v, err := strconv.ParseInt(first, 10, 64)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		return v, true
	}
	return 0, false
}

func TestContainerSurvivesShimDeath(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	dir := t.TempDir()
	d := newTestDriver(t, dir, blobs)
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{ID: id, Image: busyboxImage(t, blobs), Command: []string{"sleep", "1000"}})
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := inspect(t, d, id).Pid
	p := d.paths(id)
	data, err := os.ReadFile(p.shimPid)
	if err != nil {
		t.Fatal(err)
	}
	pidText, _, _ := strings.Cut(strings.TrimSpace(string(data)), " ") // pid, start time
	shimPid, err := strconv.Atoi(pidText)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill shim: %v", err)
	}
	wait.For(t, 10*time.Second, "the shim to die", func() bool { return !shimAlive(p) })
	if st := inspect(t, d, id); st.State != driver.StateRunning || st.Pid != pid {
		t.Fatalf("after the shim died: %+v, want still running with pid %d", st, pid)
	}
	// sleep as pid 1 has no SIGTERM handler: Stop falls back to SIGKILL.
	if err := d.Stop(ctx, id, 100*time.Millisecond); err != nil {
		t.Fatalf("Stop without a shim: %v", err)
	}
	if st := inspect(t, d, id); st.State != driver.StateStopped || st.HasExitCode {
		t.Errorf("after Stop: %+v, want stopped without an exit code (nobody recorded it)", st)
	}
	if _, found, err := d.runtime.state(ctx, id); err != nil || found {
		t.Errorf("runc still knows the container after Stop (err %v)", err)
	}
	if mounts := mountsUnder(t, dir); len(mounts) != 0 {
		t.Errorf("mounts left after Stop: %v", mounts)
	}
	if _, err := d.Exec(ctx, id, []string{"true"}, nil, nil, nil); err == nil {
		t.Error("Exec in a stopped container succeeded")
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start after a lost shim: %v", err)
	}
	if st := inspect(t, d, id); st.State != driver.StateRunning {
		t.Errorf("after Start: %+v, want running", st)
	}
}

func TestFingerprint(t *testing.T) {
	ctx := context.Background()
	d, err := New(Config{Dir: t.TempDir(), Blobs: &blobMap{}, Runtime: "/no/such/runc"})
	if err != nil {
		t.Fatal(err)
	}
	if info := d.Fingerprint(ctx); info.Available || !strings.Contains(info.Detail, "runc") {
		t.Errorf("Fingerprint without runc = %+v, want unavailable naming runc", info)
	}
	needRunc(t)
	d, err = New(Config{Dir: t.TempDir(), Blobs: &blobMap{}})
	if err != nil {
		t.Fatal(err)
	}
	if info := d.Fingerprint(ctx); !info.Available {
		t.Errorf("Fingerprint = %+v, want available", info)
	}
}
