package vm

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseCPUTime(t *testing.T) {
	tests := []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		{"1234 (qemu-system-x86) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 150 0 0 20 0 5 0 100 0", 4 * time.Second, true},
		// A command name with spaces and parentheses.
		{"77 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 100 * time.Millisecond, true},
		{"77 (short) R 1 2", 0, false},
		{"no parenthesis", 0, false},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 3 0 0", 0, false},
	}
	for _, tc := range tests {
		got, err := parseCPUTime(tc.stat)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseCPUTime(%q) = %v, %v; want %v (ok %v)", tc.stat, got, err, tc.want, tc.ok)
		}
	}
}

func TestIsOurQEMU(t *testing.T) {
	// A live process that is not QEMU, even with the right -name.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if isOurQEMU(cmd.Process.Pid, "x") {
		t.Error("sleep taken for a QEMU")
	}
	if isOurQEMU(os.Getpid(), "x") || isOurQEMU(0, "x") || isOurQEMU(1<<30, "x") {
		t.Error("a non-QEMU or missing pid taken for a QEMU")
	}
	dir := t.TempDir()
	if got := readPid(dir + "/missing"); got != 0 {
		t.Errorf("missing pid file: %d", got)
	}
	os.WriteFile(dir+"/bad", []byte("12ab\n"), 0o600)
	if got := readPid(dir + "/bad"); got != 0 {
		t.Errorf("garbage pid file: %d", got)
	}
	os.WriteFile(dir+"/good", []byte("4321\n"), 0o600)
	if got := readPid(dir + "/good"); got != 4321 {
		t.Errorf("pid file: %d, want 4321", got)
	}
}
