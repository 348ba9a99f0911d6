package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func res(cpu int, mem int64) api.Resources {
	return api.Resources{VCPUs: cpu, MemoryMiB: mem, DiskGiB: 10}
}

// host returns a Ready container host with 8 vCPUs, 16 GiB and 100 GiB.
func host(name string, edit ...func(*HostInfo)) HostInfo {
	h := HostInfo{
		Name:     name,
		Phase:    api.HostReady,
		Drivers:  []string{"container"},
		Capacity: api.Resources{VCPUs: 8, MemoryMiB: 16384, DiskGiB: 100},
	}
	for _, e := range edit {
		e(&h)
	}
	return h
}

func alloc(cpu int, mem int64, n int) func(*HostInfo) {
	return func(h *HostInfo) { h.Allocated, h.Instances = res(cpu, mem), n }
}

func instance(r api.Resources, tolerations ...string) *api.Instance {
	return &api.Instance{
		Metadata: api.ObjectMeta{Name: "i", Project: "p"},
		Spec:     api.InstanceSpec{Resources: r, Tolerations: tolerations},
		Status:   api.InstanceStatus{Phase: api.PhasePending, Driver: "container"},
	}
}

func TestPlace(t *testing.T) {
	small := res(1, 1024)
	tests := []struct {
		name       string
		inst       *api.Instance
		hosts      []HostInfo
		want       string
		wantReason []string // substrings of the reason when want is ""
	}{
		{
			name:       "no hosts",
			inst:       instance(small),
			wantReason: []string{"no host fits 1 vCPUs, 1024 MiB memory", "there are no hosts"},
		},
		{
			name:  "one fit",
			inst:  instance(small),
			hosts: []HostInfo{host("a")},
			want:  "a",
		},
		{
			name:  "spread to the least loaded",
			inst:  instance(small),
			hosts: []HostInfo{host("a", alloc(4, 1024, 1)), host("b", alloc(1, 8192, 1)), host("c", alloc(2, 2048, 1))},
			want:  "c",
		},
		{
			name:  "tie broken by fewest instances",
			inst:  instance(small),
			hosts: []HostInfo{host("a", alloc(2, 2048, 2)), host("b", alloc(2, 2048, 1))},
			want:  "b",
		},
		{
			name:  "tie broken by name",
			inst:  instance(small),
			hosts: []HostInfo{host("c"), host("b"), host("d")},
			want:  "b",
		},
		{
			name:       "NotReady and unschedulable hosts are skipped",
			inst:       instance(small),
			hosts:      []HostInfo{host("a", func(h *HostInfo) { h.Phase = api.HostNotReady }), host("b", func(h *HostInfo) { h.Unschedulable = true }), host("c", alloc(7, 8192, 5))},
			want:       "c",
			wantReason: nil,
		},
		{
			name:       "hollow taint without toleration",
			inst:       instance(small),
			hosts:      []HostInfo{host("hollow-1", func(h *HostInfo) { h.Taints = []string{api.TaintHollow} })},
			wantReason: []string{"1 host has a taint the instance does not tolerate"},
		},
		{
			name:  "hollow taint tolerated",
			inst:  instance(small, api.TaintHollow),
			hosts: []HostInfo{host("hollow-1", func(h *HostInfo) { h.Taints = []string{api.TaintHollow} })},
			want:  "hollow-1",
		},
		{
			name:  "every taint must be tolerated",
			inst:  instance(small, api.TaintHollow),
			hosts: []HostInfo{host("a", func(h *HostInfo) { h.Taints = []string{api.TaintHollow, "gpu"} }), host("b", alloc(7, 1024, 9))},
			want:  "b",
		},
		{
			name:       "driver not offered",
			inst:       func() *api.Instance { i := instance(small); i.Status.Driver = "vm"; return i }(),
			hosts:      []HostInfo{host("a")},
			wantReason: []string{"(driver vm)", "1 host does not offer the driver"},
		},
		{
			name:  "exact fit",
			inst:  instance(res(8, 16384)),
			hosts: []HostInfo{host("a")},
			want:  "a",
		},
		{
			name:  "memory short everywhere",
			inst:  instance(res(1, 8192)),
			hosts: []HostInfo{host("a", alloc(1, 10000, 1)), host("b", alloc(1, 9000, 1)), host("c", func(h *HostInfo) { h.Phase = api.HostNotReady })},
			wantReason: []string{
				"no host fits 1 vCPUs, 8192 MiB memory, 10 GiB disk (driver container)",
				"1 host is not Ready", "2 hosts have too little free memory",
			},
		},
		{
			name:       "cpu and disk short",
			inst:       instance(api.Resources{VCPUs: 4, MemoryMiB: 1, DiskGiB: 200}),
			hosts:      []HostInfo{host("a", alloc(6, 0, 1)), host("b")},
			wantReason: []string{"1 host has too few free vCPUs", "1 host has too little free disk"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fmt.Sprint(tt.hosts)
			got, reason := Place(tt.inst, tt.hosts, nil)
			if got != tt.want {
				t.Fatalf("Place = %q (%s), want %q", got, reason, tt.want)
			}
			if got != "" && reason != "" {
				t.Errorf("placed with reason %q", reason)
			}
			for _, w := range tt.wantReason {
				if !strings.Contains(reason, w) {
					t.Errorf("reason %q lacks %q", reason, w)
				}
			}
			if fmt.Sprint(tt.hosts) != before {
				t.Errorf("Place modified its input")
			}
			if _, again := Place(tt.inst, tt.hosts, nil); again != reason {
				t.Errorf("reason not deterministic: %q then %q", reason, again)
			}
		})
	}
}

// TestHollowNeverGetsUntolerated places many instances on a mix of hosts
// and checks that hollow hosts only get instances that tolerate them.
func TestHollowNeverGetsUntolerated(t *testing.T) {
	var hosts []HostInfo
	for i := range 10 {
		h := host(fmt.Sprintf("h%02d", i))
		if i%2 == 0 {
			h.Taints = []string{api.TaintHollow}
			h.Capacity = api.Resources{VCPUs: 1000, MemoryMiB: 1 << 30, DiskGiB: 1 << 20}
		}
		hosts = append(hosts, h)
	}
	idx := map[string]int{}
	for i, h := range hosts {
		idx[h.Name] = i
	}
	for i := range 200 {
		var inst *api.Instance
		if i%2 == 0 {
			inst = instance(res(1, 256))
		} else {
			inst = instance(res(1, 256), api.TaintHollow)
		}
		name, reason := Place(inst, hosts, nil)
		if name == "" {
			if len(inst.Spec.Tolerations) > 0 {
				t.Fatalf("tolerating instance not placed: %s", reason)
			}
			continue
		}
		h := &hosts[idx[name]]
		if len(h.Taints) > 0 && len(inst.Spec.Tolerations) == 0 {
			t.Fatalf("instance without toleration placed on hollow host %s", name)
		}
		h.Allocated = h.Allocated.Add(inst.Spec.Resources)
		h.Instances++
	}
}

func BenchmarkPlace1000Hosts(b *testing.B) {
	hosts := make([]HostInfo, 1000)
	for i := range hosts {
		hosts[i] = host(fmt.Sprintf("host-%04d", i), alloc(i%8, int64(i%16)*1024, i%8))
		if i%10 == 0 {
			hosts[i].Taints = []string{api.TaintHollow}
		}
	}
	inst := instance(res(1, 1024))
	b.ReportAllocs()
	for b.Loop() {
		if h, reason := Place(inst, hosts, nil); h == "" {
			b.Fatal(reason)
		}
	}
}

// placedWith returns an instance with a placement.
func placedWith(p api.Placement) *api.Instance {
	inst := instance(res(1, 1024))
	inst.Spec.Placement = &p
	return inst
}

func labels(kv ...string) func(*HostInfo) {
	return func(h *HostInfo) {
		h.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Labels[kv[i]] = kv[i+1]
		}
	}
}

func TestPlacePlacement(t *testing.T) {
	hard := api.Placement{AntiAffinityKey: "web", AntiAffinity: api.AntiAffinityHard}
	soft := api.Placement{AntiAffinityKey: "web", AntiAffinity: api.AntiAffinitySoft}
	tests := []struct {
		name       string
		inst       *api.Instance
		hosts      []HostInfo
		peers      Peers
		want       string
		wantReason []string
	}{
		{
			name:  "selector picks the matching host over a less loaded one",
			inst:  placedWith(api.Placement{HostSelector: "zone=a"}),
			hosts: []HostInfo{host("a", labels("zone", "a"), alloc(6, 8192, 6)), host("b", labels("zone", "b")), host("c")},
			want:  "a",
		},
		{
			name:  "selector with != and exists",
			inst:  placedWith(api.Placement{HostSelector: "ssd,zone!=a"}),
			hosts: []HostInfo{host("a", labels("zone", "a", "ssd", "")), host("b", labels("zone", "b")), host("c", labels("ssd", "yes"), alloc(4, 1024, 1))},
			want:  "c",
		},
		{
			name:  "local volumes pin the instance to their host",
			inst:  placedWith(api.Placement{Host: "b"}),
			hosts: []HostInfo{host("a"), host("b", alloc(6, 8192, 6)), host("c")},
			want:  "b",
		},
		{
			name:       "the volumes' host is full",
			inst:       placedWith(api.Placement{Host: "b"}),
			hosts:      []HostInfo{host("a"), host("b", alloc(8, 8192, 6))},
			wantReason: []string{"1 host is not the one the instance's local volumes live on", "1 host has too few free vCPUs"},
		},
		{
			name:       "selector matches nothing",
			inst:       placedWith(api.Placement{HostSelector: "gpu=yes"}),
			hosts:      []HostInfo{host("a", labels("zone", "a")), host("b"), host("c", func(h *HostInfo) { h.Phase = api.HostNotReady })},
			wantReason: []string{`(host selector "gpu=yes")`, "2 hosts do not match the host selector", "1 host is not Ready"},
		},
		{
			name:       "unparsable stored selector matches no host",
			inst:       placedWith(api.Placement{HostSelector: "a,,b"}),
			hosts:      []HostInfo{host("a")},
			wantReason: []string{"1 host does not match the host selector"},
		},
		{
			name:  "hard anti-affinity skips hosts with a peer",
			inst:  placedWith(hard),
			hosts: []HostInfo{host("a"), host("b", alloc(6, 8192, 6)), host("c")},
			peers: Peers{"a": 1, "c": 2},
			want:  "b",
		},
		{
			name:  "hard anti-affinity everywhere: stays pending and says so",
			inst:  placedWith(hard),
			hosts: []HostInfo{host("a"), host("b"), host("c", func(h *HostInfo) { h.Unschedulable = true })},
			peers: Peers{"a": 1, "b": 1},
			wantReason: []string{`(hard anti-affinity key "web")`,
				"2 hosts already run an instance with the same anti-affinity key (hard anti-affinity)", "1 host is unschedulable"},
		},
		{
			name:  "soft anti-affinity prefers the fewest peers over load",
			inst:  placedWith(soft),
			hosts: []HostInfo{host("a"), host("b", alloc(6, 8192, 6)), host("c")},
			peers: Peers{"a": 1, "c": 1},
			want:  "b",
		},
		{
			name:  "soft anti-affinity falls back to a host with peers",
			inst:  placedWith(soft),
			hosts: []HostInfo{host("a", alloc(4, 1024, 4)), host("b"), host("c", alloc(8, 1024, 8))},
			peers: Peers{"a": 1, "b": 2, "c": 0},
			want:  "a",
		},
		{
			name:  "a key without a mode is soft",
			inst:  placedWith(api.Placement{AntiAffinityKey: "web"}),
			hosts: []HostInfo{host("a"), host("b", alloc(2, 1024, 2))},
			peers: Peers{"a": 3, "b": 3},
			want:  "a",
		},
		{
			name:  "peers without a key are ignored",
			inst:  instance(res(1, 1024)),
			hosts: []HostInfo{host("a"), host("b", alloc(2, 1024, 2))},
			peers: Peers{"a": 3},
			want:  "a",
		},
		{
			name:  "selector and hard anti-affinity together",
			inst:  placedWith(api.Placement{HostSelector: "zone=a", AntiAffinityKey: "db", AntiAffinity: api.AntiAffinityHard}),
			hosts: []HostInfo{host("a1", labels("zone", "a")), host("a2", labels("zone", "a"), alloc(7, 1024, 7)), host("b1", labels("zone", "b"))},
			peers: Peers{"a1": 1},
			want:  "a2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fmt.Sprint(tt.hosts, tt.peers)
			got, reason := Place(tt.inst, tt.hosts, tt.peers)
			if got != tt.want {
				t.Fatalf("Place = %q (%s), want %q", got, reason, tt.want)
			}
			for _, w := range tt.wantReason {
				if !strings.Contains(reason, w) {
					t.Errorf("reason %q lacks %q", reason, w)
				}
			}
			if fmt.Sprint(tt.hosts, tt.peers) != before {
				t.Errorf("Place modified its input")
			}
		})
	}
}

// TestSoftAntiAffinitySpreads places a group one by one, counting peers
// as the scheduler does, and checks the members spread evenly.
func TestSoftAntiAffinitySpreads(t *testing.T) {
	hosts := []HostInfo{host("a"), host("b"), host("c")}
	peers := Peers{}
	inst := placedWith(api.Placement{AntiAffinityKey: "web"})
	for range 9 {
		name, reason := Place(inst, hosts, peers)
		if name == "" {
			t.Fatal(reason)
		}
		peers[name]++
	}
	for _, h := range hosts {
		if peers[h.Name] != 3 {
			t.Errorf("host %s has %d members, want 3 (%v)", h.Name, peers[h.Name], peers)
		}
	}
}

func BenchmarkPlace1000HostsAntiAffinity(b *testing.B) {
	hosts := make([]HostInfo, 1000)
	peers := Peers{}
	for i := range hosts {
		hosts[i] = host(fmt.Sprintf("host-%04d", i), alloc(i%8, int64(i%16)*1024, i%8), labels("zone", fmt.Sprint(i%3)))
		if i%2 == 0 {
			peers[hosts[i].Name] = 1
		}
	}
	inst := placedWith(api.Placement{HostSelector: "zone!=2", AntiAffinityKey: "web", AntiAffinity: api.AntiAffinityHard})
	b.ReportAllocs()
	for b.Loop() {
		if h, reason := Place(inst, hosts, peers); h == "" {
			b.Fatal(reason)
		}
	}
}
