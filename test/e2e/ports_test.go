package e2e

import (
	"testing"

	"github.com/ouroboros-cloud/ouro/internal/freeport"
)

// freePort returns a loopback TCP port for a process the test starts (see
// package freeport for why not 127.0.0.1:0).
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = freePort(t)
	}
	return out
}
