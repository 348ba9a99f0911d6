package loadbalancer

import (
	"slices"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func testHost(name string, phase api.HostPhase, edits ...func(*api.Host)) *api.Host {
	h := &api.Host{Metadata: api.ObjectMeta{Name: name},
		Status: api.HostStatus{Phase: phase, Address: "192.0.2." + name[len(name)-1:],
			Capacity: api.Resources{VCPUs: 4, MemoryMiB: 4096}}}
	for _, e := range edits {
		e(h)
	}
	return h
}

func hostMap(hs ...*api.Host) map[string]*api.Host {
	m := map[string]*api.Host{}
	for _, h := range hs {
		m[h.Metadata.Name] = h
	}
	return m
}

func testLB(hosts int, placed ...string) *api.LoadBalancer {
	lb := &api.LoadBalancer{
		Metadata: api.ObjectMeta{Project: "p", Name: "web", UID: "uid-lb", Generation: 1},
		Spec:     api.LoadBalancerSpec{Network: "n", Hosts: hosts},
		Status:   api.LoadBalancerStatus{NetworkUID: "uid-n", VIP: "10.0.0.100", PortAddresses: []string{"10.0.0.101", "10.0.0.102"}[:hosts]},
	}
	for i, name := range placed {
		lb.Status.Hosts = append(lb.Status.Hosts, api.LoadBalancerHost{Name: name, Address: lb.Status.PortAddresses[i], Priority: priority(i)})
	}
	return lb
}

func names(hs []api.LoadBalancerHost) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func TestPlace(t *testing.T) {
	cordoned := func(h *api.Host) { h.Spec.Unschedulable = true }
	hollow := func(h *api.Host) { h.Metadata.Labels = map[string]string{api.LabelHollow: "true"} }
	busy := func(h *api.Host) { h.Status.Allocated.MemoryMiB = 3000 }
	tests := []struct {
		name         string
		lb           *api.LoadBalancer
		hosts        map[string]*api.Host
		load         map[string]int
		want         []string
		wantReplaced []string
	}{
		{"one host, least loaded", testLB(1), hostMap(testHost("h1", api.HostReady), testHost("h2", api.HostReady)),
			map[string]int{"h1": 2, "h2": 1}, []string{"h2"}, nil},
		{"two hosts on different hosts", testLB(2), hostMap(testHost("h1", api.HostReady), testHost("h2", api.HostReady)),
			nil, []string{"h1", "h2"}, nil},
		{"memory breaks ties", testLB(1), hostMap(testHost("h1", api.HostReady, busy), testHost("h2", api.HostReady)),
			nil, []string{"h2"}, nil},
		{"only one host for two", testLB(2), hostMap(testHost("h1", api.HostReady)), nil, []string{"h1"}, nil},
		{"skips NotReady, cordoned, hollow", testLB(1),
			hostMap(testHost("h1", api.HostNotReady), testHost("h2", api.HostReady, cordoned), testHost("h3", api.HostReady, hollow), testHost("h4", api.HostReady)),
			nil, []string{"h4"}, nil},
		{"none eligible", testLB(1), hostMap(testHost("h1", api.HostNotReady)), nil, nil, nil},
		{"keeps its hosts", testLB(2, "h3", "h1"), hostMap(testHost("h1", api.HostReady), testHost("h2", api.HostReady), testHost("h3", api.HostReady)),
			map[string]int{"h3": 5}, []string{"h3", "h1"}, nil},
		{"keeps a cordoned host", testLB(1, "h1"), hostMap(testHost("h1", api.HostReady, cordoned), testHost("h2", api.HostReady)),
			nil, []string{"h1"}, nil},
		{"replaces a lost host", testLB(2, "h1", "h2"), hostMap(testHost("h1", api.HostNotReady), testHost("h2", api.HostReady), testHost("h3", api.HostReady)),
			nil, []string{"h3", "h2"}, []string{"h1"}},
		{"replaces a deleted host", testLB(1, "h9"), hostMap(testHost("h3", api.HostReady)),
			nil, []string{"h3"}, []string{"h9"}},
		{"keeps a lost host nothing replaces", testLB(2, "h1", "h2"), hostMap(testHost("h1", api.HostReady), testHost("h2", api.HostNotReady)),
			nil, []string{"h1", "h2"}, nil},
		{"places the missing second host", testLB(2, "h1"), hostMap(testHost("h1", api.HostReady), testHost("h2", api.HostReady)),
			map[string]int{"h2": 3}, []string{"h1", "h2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, replaced := Place(tt.lb, tt.hosts, tt.load)
			if !slices.Equal(names(got), tt.want) {
				t.Fatalf("hosts = %v, want %v", names(got), tt.want)
			}
			if !slices.Equal(replaced, tt.wantReplaced) {
				t.Errorf("replaced = %v, want %v", replaced, tt.wantReplaced)
			}
			for i, h := range got {
				if h.Address != tt.lb.Status.PortAddresses[i] || h.Priority != priority(i) {
					t.Errorf("host %d = %+v, want address %s priority %d", i, h, tt.lb.Status.PortAddresses[i], priority(i))
				}
			}
		})
	}
}

func TestAllocateVRID(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lbWith := func(uid string, vrid int, created time.Time) *api.LoadBalancer {
		return &api.LoadBalancer{Metadata: api.ObjectMeta{UID: uid, CreationTimestamp: created}, Status: api.LoadBalancerStatus{VRID: vrid}}
	}
	full := make([]*api.LoadBalancer, 0, MaxVRID)
	for i := 1; i <= MaxVRID; i++ {
		full = append(full, lbWith("o"+string(rune('a'+i%26))+string(rune('a'+i/26)), i, t0))
	}
	tests := []struct {
		name   string
		lb     *api.LoadBalancer
		others []*api.LoadBalancer
		want   int
	}{
		{"first", lbWith("a", 0, t0), nil, 1},
		{"smallest free", lbWith("a", 0, t0), []*api.LoadBalancer{lbWith("b", 1, t0), lbWith("c", 3, t0)}, 2},
		{"kept", lbWith("a", 7, t0), []*api.LoadBalancer{lbWith("b", 1, t0)}, 7},
		{"itself is not another", lbWith("a", 7, t0), []*api.LoadBalancer{lbWith("a", 7, t0)}, 7},
		{"collision, the older keeps it", lbWith("a", 1, t0), []*api.LoadBalancer{lbWith("b", 1, t0.Add(time.Second))}, 1},
		{"collision, the younger moves", lbWith("b", 1, t0.Add(time.Second)), []*api.LoadBalancer{lbWith("a", 1, t0)}, 2},
		{"collision at the same time, by UID", lbWith("b", 1, t0), []*api.LoadBalancer{lbWith("a", 1, t0)}, 2},
		{"all taken", lbWith("zz", 0, t0), full, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AllocateVRID(tt.lb, tt.others); got != tt.want {
				t.Errorf("AllocateVRID = %d, want %d", got, tt.want)
			}
		})
	}
}
