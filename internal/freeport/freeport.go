// Package freeport hands tests loopback TCP ports for the servers they start
// as separate processes or bind later.
//
// Ports come from below the kernel's ephemeral range (32768-60999 by
// default). A port the kernel chose for 127.0.0.1:0 and that was closed
// again can be chosen again at once — for another listener or as the source
// port of any outgoing connection — before the server it was meant for
// binds it. Ports in this range are never chosen by the kernel, and a
// process is given each one once.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

const (
	low  = 20000
	high = 32768
)

var state struct {
	sync.Mutex
	next int
	used map[int]bool
}

// Port returns a loopback TCP port that is free now and that no earlier
// call in this process returned.
func Port() (int, error) {
	state.Lock()
	defer state.Unlock()
	if state.used == nil {
		state.used = make(map[int]bool)
		// A random start keeps test binaries that run at once apart.
		state.next = low + rand.IntN(high-low)
	}
	for range high - low {
		p := state.next
		state.next++
		if state.next == high {
			state.next = low
		}
		if state.used[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use by something else
		}
		l.Close()
		state.used[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free loopback port in %d-%d", low, high-1)
}

// Addr returns "127.0.0.1:PORT" for a port from Port, failing tb if there
// is none.
func Addr(tb testing.TB) string {
	tb.Helper()
	p, err := Port()
	if err != nil {
		tb.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}
