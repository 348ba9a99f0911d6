package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/testimage"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// needQEMU skips (fails in CI) without root and the programs a real VM
// needs.
func needQEMU(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t) // the test image cache is under /var/cache
	if runtime.GOARCH == "arm64" {
		testenv.NeedBinary(t, "qemu-system-aarch64")
	} else {
		testenv.NeedBinary(t, "qemu-system-x86_64")
	}
	testenv.NeedBinary(t, "qemu-img")
	testenv.NeedBinary(t, "genisoimage")
}

// bootTimeout is how long a TCG boot of the tiny image may take on a busy
// machine (it takes about 5 s on an idle one).
const bootTimeout = 120 * time.Second

// waitLog waits until the VM's serial log holds want at least n times.
func waitLog(t *testing.T, d *Driver, id, want string, n int) {
	t.Helper()
	wait.ForDetail(t, bootTimeout, fmt.Sprintf("%d× %q in the serial log", n, want), func() (bool, string) {
		data, _ := os.ReadFile(d.LogPath(id))
		return strings.Count(string(data), want) >= n, "the log ends:\n" + tailString(string(data), 3000)
	})
}

// consoleRun types cmd on the VM's console and waits for want in what
// comes back (the console echoes cmd: want must not be in it).
func consoleRun(t *testing.T, d *Driver, id, cmd, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := d.Console(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(net.Conn)
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(conn, "\n%s\n", cmd); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("console: %v before %q came; got %q", err, want, tailString(got.String(), 2000))
		}
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitState polls Inspect until cond holds.
func waitState(t *testing.T, d *Driver, id string, what string, cond func(driver.Status) bool) driver.Status {
	t.Helper()
	var st driver.Status
	wait.ForDetail(t, bootTimeout, what, func() (bool, string) {
		var err error
		st, err = d.Inspect(context.Background(), id)
		return err == nil && cond(st), fmt.Sprintf("last %+v, %v", st, err)
	})
	return st
}

// cleanupVM deletes VM id when the test ends and kills any QEMU process
// of it that deleting left behind.
func cleanupVM(t *testing.T, d *Driver, id string) {
	t.Helper()
	t.Cleanup(func() {
		d.Delete(context.Background(), id)
		for _, pid := range qemuProcesses(id) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// qemuProcesses returns the pids of processes whose command line holds s.
func qemuProcesses(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(cmd), "qemu-system") && strings.Contains(string(cmd), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestVMLifecycle boots the tiny image with TCG from a qcow2 overlay and
// a kernel, through every driver operation, and a second driver on the
// same directories that adopts the running VM.
func TestVMLifecycle(t *testing.T) {
	needQEMU(t)
	kernel, initrd := testimage.Tiny(t)
	blobs := newFakeBlobs()
	kb := blobs.addFile(t, kernel, api.MediaTypeKernel)
	ib := blobs.addFile(t, initrd, api.MediaTypeInitrd)
	base := filepath.Join(t.TempDir(), "base.qcow2")
	d := testDriver(t, blobs, nil)
	ctx := context.Background()
	if _, err := d.run(ctx, d.cfg.QEMUImg, "create", "-q", "-f", "qcow2", base, "64M"); err != nil {
		t.Fatal(err)
	}
	db := blobs.addFile(t, base, api.MediaTypeDiskQCOW2)

	id := testID(t)
	cleanupVM(t, d, id)
	spec := driver.Spec{
		ID: id, Name: "tiny-1",
		Image: api.ImageSpec{Format: api.FormatQCOW2, Disk: &db, Kernel: &kb, Initrd: &ib,
			Cmdline: "loglevel=4"},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 128, DiskGiB: 1},
	}
	if _, err := d.Inspect(ctx, id); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Inspect before Create: %v, want ErrNotFound", err)
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if st, err := d.Inspect(ctx, id); err != nil || st.State != driver.StateCreated {
		t.Fatalf("after Create: %+v %v", st, err)
	}
	if ids, _ := d.List(ctx); !slices.Equal(ids, []string{id}) {
		t.Fatalf("List = %v", ids)
	}

	// Boot. The flavor's 1 GiB disk (2097152 sectors) is the overlay; the
	// seed is the second disk.
	start := time.Now()
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := d.Inspect(ctx, id)
	if err != nil || st.State != driver.StateRunning || st.Pid == 0 || st.StartedAt.IsZero() {
		t.Fatalf("after Start: %+v %v", st, err)
	}
	// An x86_64 kernel with a PVH entry boots uncompressed from the
	// kernel cache (pvh.go).
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid)); err != nil {
		t.Fatal(err)
	} else if runtime.GOARCH == "amd64" && !bytes.Contains(cmdline, []byte("\x00-kernel\x00"+filepath.Join(d.cfg.Dir, "kernels"))) {
		t.Errorf("QEMU does not boot the uncompressed kernel: %q", cmdline)
	}
	waitLog(t, d, id, "OURO-INIT", 1)
	t.Logf("TCG boot to the guest's init: %v", time.Since(start).Round(100*time.Millisecond))
	waitLog(t, d, id, "OURO-DISK vda 2097152", 1)
	waitLog(t, d, id, "OURO-DISK vdb ", 1)
	waitLog(t, d, id, "OURO-READY", 1)
	pid := st.Pid

	consoleRun(t, d, id, "echo OURO-CONSOLE-$((6*7))", "OURO-CONSOLE-42")
	consoleRun(t, d, id, "printf OURO-PERSIST > /dev/vda && sync && echo OURO-WROTE-$((1+1))", "OURO-WROTE-2")
	if cpu, err := d.CPUTime(ctx, id); err != nil || cpu <= 0 {
		t.Errorf("CPUTime = %v, %v; want > 0", cpu, err)
	}

	// A second driver on the same directories (an agent restart) adopts
	// the VM: same process, no second start.
	d2, err := New(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st2, err := d2.Inspect(ctx, id); err != nil || st2.State != driver.StateRunning || st2.Pid != pid {
		t.Fatalf("adopted: %+v %v, want running pid %d", st2, err, pid)
	}
	if err := d2.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := qemuProcesses(id); !slices.Equal(got, []int{pid}) {
		t.Fatalf("QEMU processes after Start of a running VM: %v, want [%d]", got, pid)
	}

	// Reboot resets the guest in the same process.
	if err := d2.Reboot(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, "OURO-READY", 2)
	if st, _ := d2.Inspect(ctx, id); st.Pid != pid || st.State != driver.StateRunning {
		t.Errorf("after Reboot: %+v, want running pid %d", st, pid)
	}

	// Stop presses the power button; the guest powers off cleanly.
	stopStart := time.Now()
	if err := d2.Stop(ctx, id, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(stopStart); took > 60*time.Second {
		t.Errorf("Stop took %v: the guest did not power off by itself", took)
	}
	st, err = d.Inspect(ctx, id)
	if err != nil || st.State != driver.StateStopped || !st.HasExitCode || st.ExitCode != 0 {
		t.Fatalf("after Stop: %+v %v, want stopped with exit code 0", st, err)
	}
	waitLog(t, d, id, "reboot: Power down", 1)
	if got := qemuProcesses(id); len(got) != 0 {
		t.Fatalf("QEMU still running after Stop: %v", got)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Fatalf("Stop of a stopped VM: %v", err)
	}

	// Start again: the disk kept what the guest wrote.
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, "OURO-READY", 3)
	consoleRun(t, d, id, "head -c 12 /dev/vda; echo", "OURO-PERSIST")
	st = waitState(t, d, id, "running", func(s driver.Status) bool { return s.State == driver.StateRunning })
	if st.Pid == pid {
		t.Errorf("started again with the old pid %d", pid)
	}

	// QEMU killed from outside: stopped, without an exit code.
	syscall.Kill(st.Pid, syscall.SIGKILL)
	st = waitState(t, d, id, "stopped after SIGKILL", func(s driver.Status) bool { return s.State == driver.StateStopped })
	if st.HasExitCode {
		t.Errorf("a killed QEMU reports exit code %d", st.ExitCode)
	}

	// The guest powering off by itself: stopped with exit code 0, and
	// Inspect ends the paused QEMU.
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, "OURO-READY", 4)
	// Waiting for the echo makes sure the guest got the line.
	consoleRun(t, d, id, "poweroff -f", "poweroff -f")
	st = waitState(t, d, id, "stopped by the guest", func(s driver.Status) bool { return s.State == driver.StateStopped })
	if !st.HasExitCode || st.ExitCode != 0 {
		t.Errorf("guest poweroff: %+v, want exit code 0", st)
	}
	if got := qemuProcesses(id); len(got) != 0 {
		t.Errorf("QEMU of a powered-off guest still running: %v", got)
	}

	// Delete leaves nothing.
	p := d.paths(id)
	if err := d2.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p.dir, p.runDir} {
		if fileExists(path) {
			t.Errorf("%s left after Delete", path)
		}
	}
	if _, err := d.Inspect(ctx, id); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect after Delete: %v", err)
	}
	if err := d.Delete(ctx, id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := d.Delete(ctx, strings.Repeat("a", 100)); err != nil {
		t.Errorf("Delete of an id the driver cannot have: %v", err)
	}
	if ids, _ := d.List(ctx); len(ids) != 0 {
		t.Errorf("List after Delete: %v", ids)
	}
}

// TestVMDeleteRunning deletes a running VM outright and starts a bad one.
func TestVMDeleteRunningAndBadInput(t *testing.T) {
	needQEMU(t)
	kernel, initrd := testimage.Tiny(t)
	blobs := newFakeBlobs()
	kb := blobs.addFile(t, kernel, api.MediaTypeKernel)
	ib := blobs.addFile(t, initrd, api.MediaTypeInitrd)
	d := testDriver(t, blobs, nil)
	ctx := context.Background()
	id := testID(t)
	t.Cleanup(func() {
		for _, pid := range qemuProcesses(id) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	spec := driver.Spec{ID: id, Name: "k", Image: api.ImageSpec{Format: api.FormatKernel, Kernel: &kb, Initrd: &ib},
		Resources: api.Resources{VCPUs: 1, MemoryMiB: 128}}

	for _, tc := range []struct {
		name   string
		change func(*driver.Spec)
		want   string
	}{
		{"oci image", func(s *driver.Spec) { s.Image = api.ImageSpec{Format: api.FormatOCI} }, "image.format"},
		{"kernel image without kernel", func(s *driver.Spec) { s.Image.Kernel = nil }, "image.kernel"},
		{"other architecture", func(s *driver.Spec) { s.Image.Architecture = "s390x" }, "image.architecture"},
		{"no memory", func(s *driver.Spec) { s.Resources.MemoryMiB = 0 }, "memoryMiB"},
		{"NIC without TAP", func(s *driver.Spec) { s.Interfaces = []driver.NIC{{MAC: "0a:58:0a:00:00:05"}} }, "TAP"},
		{"multicast MAC", func(s *driver.Spec) {
			s.Interfaces = []driver.NIC{{MAC: "01:00:5e:00:00:01", Tap: "ourp1", RouterNetNS: "/run/netns/x"}}
		}, "unicast"},
		{"id that is a path", func(s *driver.Spec) { s.ID = "../etc" }, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec
			tc.change(&s)
			err := d.Create(ctx, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if ids, _ := d.List(ctx); len(ids) != 0 {
				t.Errorf("a refused Create left %v", ids)
			}
		})
	}

	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, id, "OURO-INIT", 1)
	if got := qemuProcesses(id); len(got) != 1 {
		t.Fatalf("QEMU processes: %v", got)
	}
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := qemuProcesses(id); len(got) != 0 {
		t.Errorf("QEMU left after Delete: %v", got)
	}
	if fileExists(d.paths(id).dir) || fileExists(d.paths(id).runDir) {
		t.Error("files left after Delete")
	}
	if _, err := d.Console(ctx, id); err == nil {
		t.Error("Console of a deleted VM succeeded")
	}
}
