// Package testenv lets tests say what real parts of the machine they need.
// Outside CI a missing part skips the test; under CI (CI=true) it fails it,
// because .ci/run installs everything the tests need and a skip there would
// hide a missing install step.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// missing skips or fails t.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI must provide this: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// NeedRoot requires the test to run as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "test needs root")
	}
}

// NeedBinary requires a program on PATH and returns its path.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "test needs %s on PATH", name)
	}
	return p
}

// NeedFile requires a file to exist and returns its path.
func NeedFile(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "test needs %s", path)
	}
	return path
}
