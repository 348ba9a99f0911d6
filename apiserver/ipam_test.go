package apiserver

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

func TestFreeFrom(t *testing.T) {
	a := netip.MustParseAddr
	first, last := a("10.0.0.1"), a("10.0.0.6")
	used := func(ips ...string) map[string]bool {
		m := map[string]bool{}
		for _, ip := range ips {
			m[ip] = true
		}
		return m
	}
	tests := []struct {
		name   string
		offset uint32
		used   map[string]bool
		skip   []netip.Addr
		want   string // "" for none
	}{
		{"lowest", 0, used(), nil, "10.0.0.1"},
		{"from offset", 3, used(), nil, "10.0.0.4"},
		{"offset wraps", 9, used(), nil, "10.0.0.4"},
		{"skips used", 3, used("10.0.0.4", "10.0.0.5"), nil, "10.0.0.6"},
		{"wraps past used", 4, used("10.0.0.5", "10.0.0.6"), nil, "10.0.0.1"},
		{"skips gateway", 0, used(), []netip.Addr{a("10.0.0.1")}, "10.0.0.2"},
		{"full", 2, used("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6"), []netip.Addr{a("10.0.0.5")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := freeFrom(first, last, tt.offset, tt.used, tt.skip...)
			if tt.want == "" {
				if ok {
					t.Fatalf("freeFrom = %s, want none", got)
				}
				return
			}
			if !ok || got.String() != tt.want {
				t.Fatalf("freeFrom = %s, %v; want %s", got, ok, tt.want)
			}
		})
	}
	if n := hostCount(first, last); n != 6 {
		t.Errorf("hostCount = %d, want 6", n)
	}
}

// TestIPAMConcurrentCreates creates many instances at once in one network
// over a real etcd: every create succeeds with its own address, none is
// answered "too fast", and addresses are spread over the network rather
// than packed at its start.
func TestIPAMConcurrentCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	e := newEnvWith(t, store.NewEtcd(etcdtest.Client(t)), Config{})
	e.image("default", "img", false)
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("wide", "10.7.0.0/24"))
	const n, workers = 60, 20
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ips  = map[string]string{}
		next = make(chan int, n)
	)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for i := range next {
				r := e.instanceOn("default", fmt.Sprintf("c%d", i), api.NetworkAttachment{Network: "wide"})
				var in api.Instance
				if r.status != http.StatusCreated {
					t.Errorf("instance %d: %d %s", i, r.status, r.body)
					continue
				}
				r.decode(t, &in)
				mu.Lock()
				ip := in.Status.Interfaces[0].IP
				if other, ok := ips[ip]; ok {
					t.Errorf("%s handed to %s and %s", ip, other, in.Metadata.Name)
				}
				ips[ip] = in.Metadata.Name
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ips) != n {
		t.Fatalf("%d distinct addresses, want %d", len(ips), n)
	}
	high := 0
	for ip := range ips {
		if netip.MustParseAddr(ip).As4()[3] > n+1 {
			high++
		}
	}
	if high == 0 {
		t.Errorf("every address is among the lowest %d: not spread", n)
	}
}
