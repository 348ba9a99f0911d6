package apiserver

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestIPAMConcurrentCreates creates many instances at once in one network
// over a real etcd: every create succeeds with its own address, none is
// answered "too fast", and addresses are spread over the network rather
// than packed at its start.
func TestIPAMConcurrentCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	e := newEnvWith(t, etcdStore(t), Config{})
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
