package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/testenv"
)

// fakeQEMU writes a script that plays the probe guest: it finds the
// serial file in its -chardev argument and runs body with $serial set.
func fakeQEMU(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu-system-fake")
	script := `#!/bin/sh
serial=
for a in "$@"; do
	case "$a" in file,id=s0,path=*) serial="${a#file,id=s0,path=}" ;; esac
done
` + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunProbeDecision(t *testing.T) {
	testenv.NeedBinary(t, "sh")
	tests := []struct {
		name    string
		body    string
		wantOut string
		wantErr string
	}{
		{"reaches long mode", `printf RPL > "$serial"; exec sleep 30`, "RPL", ""},
		{"reaches long mode and exits", `printf RPL > "$serial"`, "RPL", ""},
		{"hangs in real mode", `printf R > "$serial"; exec sleep 30`, "R", ""},
		{"silent", `exec sleep 30`, "", ""},
		{"refuses KVM", `echo "qemu-system-x86_64: failed to initialize kvm: Permission denied" >&2; exit 1`, "", "failed to initialize kvm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, err := runProbe(context.Background(), fakeQEMU(t, tc.body), "amd64", t.TempDir(), 500*time.Millisecond)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.wantOut {
				t.Errorf("serial output %q, want %q", out, tc.wantOut)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the probe took %v with a 500ms deadline", d)
			}
		})
	}
}

func TestAccelChoice(t *testing.T) {
	for _, tc := range []struct {
		accel, want string
	}{
		{"tcg", "tcg: forced by configuration"},
		{"kvm", "kvm"},
	} {
		d := testDriver(t, newFakeBlobs(), func(c *Config) { c.Accel = tc.accel })
		if got := d.accel(context.Background()).detail(); got != tc.want {
			t.Errorf("Accel %q: %q, want %q", tc.accel, got, tc.want)
		}
	}
	// A probe that never reaches long mode within the deadline means TCG,
	// with the reason; the choice is kept for the process.
	q := fakeQEMU(t, `printf RP > "$serial"; exec sleep 30`)
	d := testDriver(t, newFakeBlobs(), func(c *Config) { c.Accel, c.QEMU, c.ProbeTimeout = "auto", q, 300*time.Millisecond })
	if checkKVMDevice() != nil {
		t.Skip("no usable /dev/kvm: the probe is not reached")
	}
	a := d.accel(context.Background())
	if a.kvm || !strings.Contains(a.why, "did not reach 64-bit mode") || !strings.Contains(a.why, `"RP"`) {
		t.Fatalf("choice %+v, want TCG because the guest stopped after RP", a)
	}
	os.Remove(q) // a second probe would now fail differently
	if b := d.accel(context.Background()); b != a {
		t.Errorf("second call probed again: %+v then %+v", a, b)
	}
}

func TestX86ProbeSector(t *testing.T) {
	s := x86ProbeSector()
	if len(s) != 512 || s[510] != 0x55 || s[511] != 0xaa {
		t.Fatalf("not a boot sector: %d bytes, signature %x %x", len(s), s[510], s[511])
	}
	// The three serial writes: mov $'R'|'P'|'L',%al.
	for _, c := range []byte("RPL") {
		if !strings.Contains(string(s), string([]byte{0xb0, c})) {
			t.Errorf("no write of %q", c)
		}
	}
}

// TestProbeRealQEMU runs the real probe: with KVM it decides within the
// deadline either way; with TCG (no KVM involved) the same guest must
// reach long mode, which proves the boot sector itself works.
func TestProbeRealQEMU(t *testing.T) {
	qemu := testenv.NeedBinary(t, "qemu-system-x86_64")
	dir := t.TempDir()
	serial := filepath.Join(dir, "serial")
	args, err := probeArgs("amd64", dir, serial)
	if err != nil {
		t.Fatal(err)
	}
	// Same guest under TCG.
	for i, a := range args {
		if a == "kvm" {
			args[i] = "tcg"
		}
		if a == "host" {
			args[i] = "max"
		}
	}
	// A wrapper that runs QEMU with these arguments whatever it is given.
	tcg := filepath.Join(t.TempDir(), "qemu-tcg")
	if err := os.WriteFile(tcg, []byte("#!/bin/sh\nexec "+qemu+" "+shellQuote(args)+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runProbe(context.Background(), tcg, "amd64", dir, 20*time.Second)
	if err != nil || !strings.Contains(string(out), "RPL") {
		t.Fatalf("the probe guest under TCG: output %q, err %v; want RPL", out, err)
	}

	if checkKVMDevice() != nil {
		t.Skip("no usable /dev/kvm")
	}
	d := testDriver(t, newFakeBlobs(), func(c *Config) { c.Accel = "auto" })
	start := time.Now()
	a := d.probeKVM(context.Background())
	t.Logf("KVM probe on this host: %s (%v)", a.detail(), time.Since(start).Round(time.Millisecond))
	if time.Since(start) > d.cfg.ProbeTimeout+5*time.Second {
		t.Errorf("the probe took %v, deadline %v", time.Since(start), d.cfg.ProbeTimeout)
	}
}

// shellQuote quotes args for sh.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
