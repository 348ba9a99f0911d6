package container

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/driver/blobcache"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// buildProbe builds testdata/probe statically and returns its content.
func buildProbe(t *testing.T) []byte {
	t.Helper()
	goBin := testenv.NeedBinary(t, "go")
	out := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// confinedImage is the busybox image with a layer of files owned by
// various users, a set-uid file, an id beyond the mapped range and the
// probe.
func confinedImage(t *testing.T, blobs *blobMap) api.ImageSpec {
	t.Helper()
	image := busyboxImage(t, blobs)
	owned := []tarEntry{
		{name: "home/", typ: tar.TypeDir},
		{name: "home/worker/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1001},
		{name: "home/worker/notes", body: "n\n", mode: 0o640, uid: 1000, gid: 1001},
		{name: "bin/setuid", body: "#!/bin/sh\n", mode: 0o4755},
		{name: "bin/setgid", body: "#!/bin/sh\n", mode: 0o2755, gid: 50},
		{name: "far", body: "f\n", uid: 70000, gid: 70000},
		{name: "bin/probe", body: string(buildProbe(t)), mode: 0o755},
	}
	image.Layers = append(image.Layers, blobs.add(gzipBytes(t, makeTar(t, owned)), api.MediaTypeLayerGzip))
	return image
}

// TestContainerConfinement checks, with real runc, that a container's
// root is an unprivileged host user and that the seccomp filter refuses
// what leads to most container escapes.
func TestContainerConfinement(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	d := newTestDriver(t, t.TempDir(), blobs)
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{ID: id, Name: "jail", Image: confinedImage(t, blobs), Command: []string{"sleep", "1000"}})
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := inspect(t, d, id).Pid
	p := d.paths(id)

	t.Run("root is an unprivileged host user", func(t *testing.T) {
		for _, f := range []string{"uid_map", "gid_map"} {
			data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), f))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(data)); strings.Join(got, " ") != "0 100000 65536" {
				t.Errorf("%s = %q, want 0 100000 65536", f, data)
			}
		}
		if uid, gid := procIDs(t, pid); uid != "100000" || gid != "100000" {
			t.Errorf("host uid/gid of the container's process = %s/%s, want 100000/100000", uid, gid)
		}
		if code, out := execOut(t, d, id, "id", "-u"); code != 0 || out != "0" {
			t.Errorf("id -u in the container = %d %q, want 0", code, out)
		}
	})

	t.Run("refused system calls", func(t *testing.T) {
		for call, want := range map[string]string{
			"keyctl": "EPERM", "add_key": "EPERM", "bpf": "EPERM", "unshare": "EPERM",
			"clone": "EPERM", "clone3": "ENOSYS", "mount": "EPERM", "ptrace": "EPERM", "setns": "EPERM",
		} {
			if code, out := execOut(t, d, id, "/bin/probe", call); code != 0 || out != want {
				t.Errorf("probe %s = %d %q, want %s", call, code, out, want)
			}
		}
	})

	t.Run("ping", func(t *testing.T) {
		if code, _ := execOut(t, d, id, "busybox", "ping", "-c1", "-W2", "127.0.0.1"); code != 0 {
			t.Errorf("ping 127.0.0.1 in the container: exit %d", code)
		}
	})

	t.Run("unshare -Urm and mount", func(t *testing.T) {
		for _, tc := range []struct {
			argv []string
			want string
		}{
			// 0x10020000 is CLONE_NEWUSER|CLONE_NEWNS.
			{[]string{"busybox", "unshare", "-U", "-r", "-m", "true"}, "unshare: unshare(0x10020000): Operation not permitted"},
			// busybox's words for EPERM from mount(2).
			{[]string{"busybox", "mount", "-t", "tmpfs", "none", "/mnt"}, "mount: permission denied (are you root?)"},
		} {
			var out strings.Builder
			code, err := d.Exec(ctx, id, tc.argv, nil, &out, &out)
			if err != nil {
				t.Fatalf("Exec %q: %v", tc.argv, err)
			}
			if code != 1 || strings.TrimSpace(out.String()) != tc.want {
				t.Errorf("%q = %d %q, want 1 %q", tc.argv, code, out.String(), tc.want)
			}
		}
	})

	t.Run("image owners and modes as in the image", func(t *testing.T) {
		for path, want := range map[string]string{
			"/home/worker":       "1000:1001 750",
			"/home/worker/notes": "1000:1001 640",
			"/bin/setuid":        "0:0 4755",
			"/bin/setgid":        "0:50 2755",
			"/far":               "65534:65534 644", // beyond the range: nobody
			"/etc/hostname":      "0:0 644",
			"/":                  "0:0 755",
		} {
			if code, out := execOut(t, d, id, "busybox", "stat", "-c", "%u:%g %a", path); code != 0 || out != want {
				t.Errorf("stat %s = %d %q, want %q", path, code, out, want)
			}
		}
	})

	t.Run("new files belong to shifted users on the host", func(t *testing.T) {
		script := "echo x > /tmp/root-file && echo y > /tmp/worker-file && busybox chown 1000:1001 /tmp/worker-file"
		if code, _ := execOut(t, d, id, "sh", "-c", script); code != 0 {
			t.Fatalf("writing files: exit %d", code)
		}
		for name, want := range map[string][2]uint32{"root-file": {100000, 100000}, "worker-file": {101000, 101001}} {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(p.upper, "tmp", name), &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != want[0] || st.Gid != want[1] {
				t.Errorf("host owner of %s = %d:%d, want %d:%d", name, st.Uid, st.Gid, want[0], want[1])
			}
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p.dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o710 || st.Uid != 0 || st.Gid != 100000 {
			t.Errorf("instance directory: mode %#o owner %d:%d, want 0710 0:100000 (other host users kept out)", st.Mode&0o7777, st.Uid, st.Gid)
		}
		for _, f := range []string{p.upper, filepath.Join(p.bundle, "hostname"), filepath.Join(p.bundle, "hosts")} {
			var st syscall.Stat_t
			if err := syscall.Lstat(f, &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 100000 || st.Gid != 100000 {
				t.Errorf("host owner of %s = %d:%d, want the shifted root 100000:100000", f, st.Uid, st.Gid)
			}
		}
	})
}

// procIDs returns the real host uid and gid of process pid.
func procIDs(t *testing.T, pid int) (uid, gid string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		} else if len(f) > 1 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	return uid, gid
}

// TestContainerFromBeforeUserNamespaces checks that an instance created
// without a user namespace (by an older agent, on the unshifted layer
// cache) is adopted while running and starts again as it was.
func TestContainerFromBeforeUserNamespaces(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	dir := t.TempDir()
	old := newTestDriver(t, dir, blobs)
	old.idMap = idMap{} // as an agent before user namespaces
	id := uniqueID(t)
	createContainer(t, old, driver.Spec{ID: id, Image: busyboxImage(t, blobs), Command: []string{"sleep", "1000"}})
	if err := old.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}

	d := newTestDriver(t, dir, blobs) // the upgraded agent
	if st := inspect(t, d, id); st.State != driver.StateRunning {
		t.Fatalf("adopted container: state %q, want running", st.State)
	}
	if code, out := execOut(t, d, id, "id", "-u"); code != 0 || out != "0" {
		t.Errorf("id -u = %d %q", code, out)
	}
	if err := d.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	pid := inspect(t, d, id).Pid
	if uid, _ := procIDs(t, pid); uid != "0" {
		t.Errorf("restarted old container runs as host uid %s, want 0 (its bundle has no mapping)", uid)
	}
	keys, err := d.layers.Keys()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		if _, variant, _ := blobcache.ParseKey(key); variant != "" {
			t.Errorf("the old container's start extracted shifted layer %s", key)
		}
	}
}

// TestContainerJoiningNetNS checks that a container joining a network
// namespace of the host (as the agent's network plane makes them) starts
// and can be exec'd into, with each OCI runtime: in a user namespace
// where the runtime can do that (crun, runc 1.2 and later), as host root
// under the seccomp filter where it cannot (runc 1.1).
func TestContainerJoiningNetNS(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			needRuntime(t, rt)
			testContainerJoiningNetNS(t, rt)
		})
	}
}

func testContainerJoiningNetNS(t *testing.T, rt string) {
	ipBin := testenv.NeedBinary(t, "ip")
	ctx := context.Background()
	name := uniqueID(t)
	for _, args := range [][]string{{"netns", "add", name}, {"-n", name, "link", "set", "lo", "up"}} {
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ipBin, "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	nsPath := "/run/netns/" + name
	blobs := &blobMap{}
	d := newRuntimeTestDriver(t, t.TempDir(), blobs, rt)
	info := d.runtimeInfo(ctx)
	shifted := info.execsIntoJoinedNetNS()
	t.Logf("%s: user namespace %v", info, shifted)
	id := uniqueID(t)
	createContainer(t, d, driver.Spec{ID: id, Image: confinedImage(t, blobs), NetNS: nsPath, Command: []string{"sleep", "1000"}})
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := inspect(t, d, id).Pid
	if got, want := netnsOf(t, strconv.Itoa(pid)), netnsOf(t, nsPath); got != want {
		t.Errorf("container's network namespace = %s, want the joined %s", got, want)
	}

	wantMap := "0 0 4294967295"
	if shifted {
		wantMap = "0 100000 65536"
	}
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"id", "-u"}, "0"},
		{[]string{"cat", "/proc/self/uid_map"}, wantMap},
		{[]string{"cat", "/proc/self/gid_map"}, wantMap},
		{[]string{"/bin/probe", "unshare"}, "EPERM"},
		{[]string{"sh", "-c", "grep NoNewPrivs /proc/self/status"}, "NoNewPrivs:\t1"},
		{[]string{"sh", "-c", "grep Seccomp: /proc/self/status"}, "Seccomp:\t2"},
	} {
		// Compared field by field: the kernel pads and tabs these.
		code, out := execOut(t, d, id, tc.argv...)
		if code != 0 || strings.Join(strings.Fields(out), " ") != strings.Join(strings.Fields(tc.want), " ") {
			t.Errorf("exec %q = %d %q, want 0 %q", tc.argv, code, out, tc.want)
		}
	}

	wantUID := "0"
	want := map[string]string{"ping_group_range": "0\t2147483647", "ip_unprivileged_port_start": "1024"}
	if shifted {
		wantUID = "100000"
		want["ip_unprivileged_port_start"] = "0" // its root has no privilege there
	}
	for key, value := range want {
		out, err := exec.Command(ipBin, "netns", "exec", name, "cat", "/proc/sys/net/ipv4/"+key).Output()
		if err != nil || strings.TrimSpace(string(out)) != value {
			t.Errorf("%s in the joined namespace = %q (%v), want %q", key, out, err, value)
		}
	}
	if uid, _ := procIDs(t, pid); uid != wantUID {
		t.Errorf("host uid = %s, want %s with %s", uid, wantUID, info)
	}
	if err := d.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := inspect(t, d, id); st.State != driver.StateStopped {
		t.Errorf("after Stop: %+v, want stopped", st)
	}
}

// netnsOf returns the network namespace of a process (a pid) or a
// namespace file, as "net:[<inode>]".
func netnsOf(t *testing.T, pidOrPath string) string {
	t.Helper()
	if _, err := strconv.Atoi(pidOrPath); err == nil {
		link, err := os.Readlink(filepath.Join("/proc", pidOrPath, "ns", "net"))
		if err != nil {
			t.Fatal(err)
		}
		return link
	}
	var st syscall.Stat_t
	if err := syscall.Stat(pidOrPath, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

func TestParseRuntimeVersion(t *testing.T) {
	for _, tc := range []struct {
		out        string
		want       runtimeInfo
		joinsNetNS bool
	}{
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n", runtimeInfo{"runc", 1, 1}, false},
		{"runc version 1.2.0\n", runtimeInfo{"runc", 1, 2}, true},
		{"runc version 2.0.1", runtimeInfo{"runc", 2, 0}, true},
		{"crun version 1.8.1\ncommit: f8a096be\n", runtimeInfo{"crun", 1, 8}, true},
		{"crun version 1.4", runtimeInfo{"crun", 1, 4}, false},
		{"youki version 0.3.0", runtimeInfo{}, false},
		{"runc version x", runtimeInfo{}, false},
		{"", runtimeInfo{}, false},
	} {
		got := parseRuntimeVersion(tc.out)
		if got != tc.want {
			t.Errorf("parseRuntimeVersion(%q) = %+v, want %+v", tc.out, got, tc.want)
		}
		if got.execsIntoJoinedNetNS() != tc.joinsNetNS {
			t.Errorf("%s: execsIntoJoinedNetNS = %v, want %v", got, !tc.joinsNetNS, tc.joinsNetNS)
		}
	}
}

func TestCrunSupportsCgroups(t *testing.T) {
	for _, tc := range []struct {
		name        string
		controllers *string // unified/cgroup.controllers, nil for none
		want        bool
	}{
		{"unified or legacy", nil, true},
		{"hybrid without v2 controllers", ptr(""), true},
		{"hybrid with v2 controllers", ptr("hugetlb\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.controllers != nil {
				if err := os.MkdirAll(filepath.Join(root, "unified"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "unified", "cgroup.controllers"), []byte(*tc.controllers), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := crunSupportsCgroups(root); got != tc.want {
				t.Errorf("crunSupportsCgroups = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRuntimeChange checks that a driver reconfigured from runc to crun
// keeps serving the containers runc started, also those from before the
// runtime was recorded, and starts them again with crun.
func TestRuntimeChange(t *testing.T) {
	needRuntime(t, "runc")
	needRuntime(t, "crun")
	ctx := context.Background()
	blobs := &blobMap{}
	dir := t.TempDir()
	old := newRuntimeTestDriver(t, dir, blobs, "runc")
	id := uniqueID(t)
	createContainer(t, old, driver.Spec{ID: id, Image: busyboxImage(t, blobs), Command: []string{"sleep", "1000"}})
	if err := old.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	p := old.paths(id)
	if err := os.Remove(p.runtime); err != nil { // as an agent before the record
		t.Fatal(err)
	}

	d := newRuntimeTestDriver(t, dir, blobs, "crun")
	if st := inspect(t, d, id); st.State != driver.StateRunning {
		t.Fatalf("container of runc: state %q, want running", st.State)
	}
	if code, out := execOut(t, d, id, "echo", "hi"); code != 0 || out != "hi" {
		t.Errorf("exec into the container of runc = %d %q", code, out)
	}
	if err := d.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatalf("Start with crun: %v", err)
	}
	for _, tc := range []struct {
		rt   runc
		want bool
	}{{old.runtime, false}, {d.runtime, true}} {
		if _, found, err := tc.rt.state(ctx, id); err != nil || found != tc.want {
			t.Errorf("%s state: found %v (%v), want %v", tc.rt.path, found, err, tc.want)
		}
	}
	if code, out := execOut(t, d, id, "echo", "hi"); code != 0 || out != "hi" {
		t.Errorf("exec into the container of crun = %d %q", code, out)
	}
}
