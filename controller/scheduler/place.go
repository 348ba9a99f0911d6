package scheduler

import (
	"fmt"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// HostInfo is what placement needs to know of a host: an immutable
// snapshot taken by the scheduler.
type HostInfo struct {
	Name          string
	Phase         api.HostPhase
	Unschedulable bool
	// Taints an instance must tolerate (by key) to be placed here.
	Taints []string
	// Drivers the host offers ("container", "vm").
	Drivers      []string
	Architecture string
	Capacity     api.Resources
	// Allocated is the sum of spec.resources of the instances placed on
	// the host that are not Terminated (including placements decided but
	// not yet committed).
	Allocated api.Resources
	// Instances counts those instances.
	Instances int
	// Labels are the host's labels, matched by spec.placement.hostSelector.
	Labels map[string]string
}

// Free returns the resources not yet allocated.
func (h *HostInfo) Free() api.Resources { return h.Capacity.Sub(h.Allocated) }

// load is the allocated fraction of the host: the larger of its CPU and
// memory ratios. A host without capacity counts as full.
func (h *HostInfo) load() float64 {
	ratio := func(alloc, capa int64) float64 {
		if capa <= 0 {
			if alloc <= 0 {
				return 0
			}
			return 1
		}
		return float64(alloc) / float64(capa)
	}
	return max(ratio(int64(h.Allocated.VCPUs), int64(h.Capacity.VCPUs)),
		ratio(h.Allocated.MemoryMiB, h.Capacity.MemoryMiB))
}

// misfit says why a host does not take an instance.
type misfit int

const (
	fits misfit = iota
	notReady
	unschedulable
	selector
	pinned
	taint
	driver
	antiAffinity
	shortCPU
	shortMemory
	shortDisk
	numMisfits
)

// misfitText describes each misfit for one host and for several.
var misfitText = [numMisfits][2]string{
	notReady:      {"host is not Ready", "hosts are not Ready"},
	unschedulable: {"host is unschedulable", "hosts are unschedulable"},
	selector:      {"host does not match the host selector", "hosts do not match the host selector"},
	pinned:        {"host is not the one the instance's local volumes live on", "hosts are not the one the instance's local volumes live on"},
	taint:         {"host has a taint the instance does not tolerate", "hosts have taints the instance does not tolerate"},
	driver:        {"host does not offer the driver", "hosts do not offer the driver"},
	antiAffinity:  {"host already runs an instance with the same anti-affinity key (hard anti-affinity)", "hosts already run an instance with the same anti-affinity key (hard anti-affinity)"},
	shortCPU:      {"host has too few free vCPUs", "hosts have too few free vCPUs"},
	shortMemory:   {"host has too little free memory", "hosts have too little free memory"},
	shortDisk:     {"host has too little free disk", "hosts have too little free disk"},
}

// Peers counts, per host name, the instances (not Terminated) of an
// instance's project that carry its anti-affinity key. A nil map counts
// none.
type Peers map[string]int

// request is what Place needs of an instance, parsed once per call.
type request struct {
	inst     *api.Instance
	selector api.Selector
	// badSelector is set when spec.placement.hostSelector does not parse
	// (the API refuses it; a stored one matches no host).
	badSelector bool
	peers       Peers
	hard        bool
}

func newRequest(inst *api.Instance, peers Peers) request {
	r := request{inst: inst}
	if p := inst.Spec.Placement; p != nil {
		if p.HostSelector != "" {
			sel, err := api.ParseSelector(p.HostSelector)
			r.selector, r.badSelector = sel, err != nil
		}
		if p.AntiAffinityKey != "" {
			r.peers = peers
			r.hard = p.AntiAffinity == api.AntiAffinityHard
		}
	}
	return r
}

// check tells whether the instance fits on h, and if not, the first
// reason why.
func (r *request) check(h *HostInfo) misfit {
	inst := r.inst
	switch {
	case h.Phase != api.HostReady:
		return notReady
	case h.Unschedulable:
		return unschedulable
	case r.badSelector || (r.selector != nil && !r.selector.Matches(h.Labels)):
		return selector
	case inst.Spec.Placement != nil && inst.Spec.Placement.Host != "" && inst.Spec.Placement.Host != h.Name:
		return pinned
	}
	for _, t := range h.Taints {
		if !contains(inst.Spec.Tolerations, t) {
			return taint
		}
	}
	if d := inst.Status.Driver; d != "" && !contains(h.Drivers, d) {
		return driver
	}
	if r.hard && r.peers[h.Name] > 0 {
		return antiAffinity
	}
	need, free := inst.Spec.Resources, h.Free()
	switch {
	case need.VCPUs > free.VCPUs:
		return shortCPU
	case need.MemoryMiB > free.MemoryMiB:
		return shortMemory
	case need.DiskGiB > free.DiskGiB:
		return shortDisk
	}
	return fits
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Place chooses a host for inst among hosts, or explains why none fits.
//
// A host fits when it is Ready, schedulable, its labels match
// spec.placement.hostSelector, every one of its taints is in
// spec.tolerations, it offers status.driver (when set), it runs no peer
// when the anti-affinity is hard, and its free resources hold
// spec.resources. peers counts, per host, the instances of inst's project
// with inst's anti-affinity key (see Peers); it is ignored without a key.
//
// Among the hosts that fit, Place prefers the fewest peers (soft
// anti-affinity), then spreads: the lowest allocated fraction (the larger
// of the CPU and memory ratios), then the fewest instances, then the
// smallest name.
//
// The image architecture is not checked: instances do not carry it.
//
// When no host fits, host is empty and reason (which is deterministic for
// the same inputs) says what was short. Place does not modify its inputs.
func Place(inst *api.Instance, hosts []HostInfo, peers Peers) (host string, reason string) {
	r := newRequest(inst, peers)
	best := -1
	var bestLoad float64
	bestPeers := 0
	for i := range hosts {
		h := &hosts[i]
		if r.check(h) != fits {
			continue
		}
		n := r.peers[h.Name]
		l := h.load()
		if best < 0 || n < bestPeers || (n == bestPeers && better(l, h, bestLoad, &hosts[best])) {
			best, bestLoad, bestPeers = i, l, n
		}
	}
	if best >= 0 {
		return hosts[best].Name, ""
	}
	return "", r.explain(hosts)
}

// better reports whether host a (with load la) beats host b (load lb).
func better(la float64, a *HostInfo, lb float64, b *HostInfo) bool {
	if la != lb {
		return la < lb
	}
	if a.Instances != b.Instances {
		return a.Instances < b.Instances
	}
	return a.Name < b.Name
}

// explain builds the message of an instance that fits nowhere, e.g.
// "no host fits 4 vCPUs, 8192 MiB memory, 10 GiB disk (driver container):
// 3 hosts have too little free memory, 1 host is not Ready".
func (r *request) explain(hosts []HostInfo) string {
	inst := r.inst
	res := inst.Spec.Resources
	var b strings.Builder
	fmt.Fprintf(&b, "no host fits %d vCPUs, %d MiB memory, %d GiB disk", res.VCPUs, res.MemoryMiB, res.DiskGiB)
	if inst.Status.Driver != "" {
		fmt.Fprintf(&b, " (driver %s)", inst.Status.Driver)
	}
	if p := inst.Spec.Placement; p != nil {
		if p.HostSelector != "" {
			fmt.Fprintf(&b, " (host selector %q)", p.HostSelector)
		}
		if p.AntiAffinityKey != "" && r.hard {
			fmt.Fprintf(&b, " (hard anti-affinity key %q)", p.AntiAffinityKey)
		}
	}
	if len(hosts) == 0 {
		b.WriteString(": there are no hosts")
		return b.String()
	}
	var counts [numMisfits]int
	for i := range hosts {
		counts[r.check(&hosts[i])]++
	}
	sep := ": "
	for m := notReady; m < numMisfits; m++ {
		n := counts[m]
		if n == 0 {
			continue
		}
		if n == 1 {
			fmt.Fprintf(&b, "%s1 %s", sep, misfitText[m][0])
		} else {
			fmt.Fprintf(&b, "%s%d %s", sep, n, misfitText[m][1])
		}
		sep = ", "
	}
	return b.String()
}
