package container

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// The second Start of a driver runs its container under the shim started
// on standby after the first: the exit code is recorded, the shim logs
// to the instance's shim.log, and shim.pid names it with its start time.
func TestStandbyShimRunsTheNextContainer(t *testing.T) {
	needRunc(t)
	ctx := context.Background()
	blobs := &blobMap{}
	d := newTestDriver(t, t.TempDir(), blobs)
	img := busyboxImage(t, blobs)
	first, second := uniqueID(t), uniqueID(t)
	createContainer(t, d, driver.Spec{ID: first, Image: img, Command: []string{"sleep", "1000"}})
	createContainer(t, d, driver.Spec{ID: second, Image: img, Command: []string{"sh", "-c", "echo standby; exit 3"}})
	if err := d.Start(ctx, first); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wait.For(t, 10*time.Second, "a standby shim", func() bool {
		d.standby.mu.Lock()
		defer d.standby.mu.Unlock()
		return d.standby.ready != nil
	})
	if err := d.Start(ctx, second); err != nil {
		t.Fatalf("Start under the standby shim: %v", err)
	}
	p := d.paths(second)
	data, err := os.ReadFile(p.shimPid)
	if err != nil {
		t.Fatal(err)
	}
	pidText, start, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
	pid, _ := strconv.Atoi(pidText)
	if !ok || start == "" || pid <= 0 {
		t.Fatalf("shim.pid = %q, want a pid and a start time", data)
	}
	if cmdline, _ := os.ReadFile(filepath.Join("/proc", pidText, "cmdline")); len(cmdline) > 0 && !strings.Contains(string(cmdline), "\x00--standby\x00") {
		t.Errorf("the second container's shim is not the standby one: %q", cmdline)
	}
	var st driver.Status
	wait.For(t, 10*time.Second, "the exit code", func() bool {
		st = inspect(t, d, second)
		return st.HasExitCode
	})
	if st.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", st.ExitCode)
	}
	wait.For(t, 10*time.Second, "the shim to end", func() bool { return !shimAlive(p) })
	if log, _ := os.ReadFile(p.shimLog); !strings.Contains(string(log), "container exited") {
		t.Errorf("shim.log of the standby shim lacks its messages: %q", log)
	}
	if out, _ := os.ReadFile(d.LogPath(second)); !strings.Contains(string(out), "standby") {
		t.Errorf("console log %q lacks the output", out)
	}
}

// A standby shim that the driver never gives work (the agent ended)
// exits, and one told to run a directory outside its driver's refuses.
func TestStandbyShimWithoutWork(t *testing.T) {
	needRunc(t)
	d := newTestDriver(t, t.TempDir(), &blobMap{})
	for _, tc := range []struct {
		name, send string
		wantExit   int
	}{
		{"nothing", "", 0},
		{"another directory", `{"dir":"/etc","id":"x","runc":"/bin/true"}`, 2},
		{"not JSON", "run /bin/sh", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := d.spawnStandby()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(s.in, tc.send)
			s.in.Close()
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				s.cmd.Process.Kill()
				t.Fatal("the standby shim did not exit")
			}
			if code := s.cmd.ProcessState.ExitCode(); code != tc.wantExit {
				t.Errorf("exit code %d, want %d", code, tc.wantExit)
			}
		})
	}
}

func TestReadAssignment(t *testing.T) {
	root := "/var/lib/ouro/containers"
	for _, tc := range []struct {
		name, in string
		ok       bool
		eof      bool
	}{
		{"good", `{"dir":"/var/lib/ouro/containers/instances/abc","id":"abc","runc":"/usr/bin/crun"}`, true, false},
		{"empty", "\n", false, true},
		{"outside", `{"dir":"/var/lib/ouro/containers/instances/../../etc","id":"abc","runc":"/usr/bin/crun"}`, false, false},
		{"another id", `{"dir":"/var/lib/ouro/containers/instances/abd","id":"abc","runc":"/usr/bin/crun"}`, false, false},
		{"bad id", `{"dir":"/var/lib/ouro/containers/instances/A/../b","id":"A/../b","runc":"/usr/bin/crun"}`, false, false},
		{"no runtime", `{"dir":"/var/lib/ouro/containers/instances/abc","id":"abc"}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAssignment(strings.NewReader(tc.in), root)
			if (err == nil) != tc.ok || errors.Is(err, io.EOF) != tc.eof {
				t.Errorf("readAssignment(%q) = %v", tc.in, err)
			}
		})
	}
}
