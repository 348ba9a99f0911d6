package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsAreDistinctFreeAndOutsideEphemeral(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p < low || p >= high {
			t.Fatalf("port %d outside %d-%d", p, low, high-1)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestPortSkipsBusy(t *testing.T) {
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Make the busy port the next candidate, as if it had not been given.
	state.Lock()
	delete(state.used, p)
	state.next = p
	state.Unlock()
	q, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	if q == p {
		t.Fatalf("Port returned busy port %d", p)
	}
}
