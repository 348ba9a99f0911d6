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
	taint
	driver
	shortCPU
	shortMemory
	shortDisk
	numMisfits
)

// misfitText describes each misfit for one host and for several.
var misfitText = [numMisfits][2]string{
	notReady:      {"host is not Ready", "hosts are not Ready"},
	unschedulable: {"host is unschedulable", "hosts are unschedulable"},
	taint:         {"host has a taint the instance does not tolerate", "hosts have taints the instance does not tolerate"},
	driver:        {"host does not offer the driver", "hosts do not offer the driver"},
	shortCPU:      {"host has too few free vCPUs", "hosts have too few free vCPUs"},
	shortMemory:   {"host has too little free memory", "hosts have too little free memory"},
	shortDisk:     {"host has too little free disk", "hosts have too little free disk"},
}

// check tells whether inst fits on h, and if not, the first reason why.
func check(inst *api.Instance, h *HostInfo) misfit {
	switch {
	case h.Phase != api.HostReady:
		return notReady
	case h.Unschedulable:
		return unschedulable
	}
	for _, t := range h.Taints {
		if !contains(inst.Spec.Tolerations, t) {
			return taint
		}
	}
	if d := inst.Status.Driver; d != "" && !contains(h.Drivers, d) {
		return driver
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
// A host fits when it is Ready, schedulable, every one of its taints is in
// spec.tolerations, it offers status.driver (when set) and its free
// resources hold spec.resources. Among the hosts that fit, Place spreads:
// it picks the lowest allocated fraction (the larger of the CPU and memory
// ratios), then the fewest instances, then the smallest name.
//
// The image architecture is not checked: instances do not carry it.
//
// When no host fits, host is empty and reason (which is deterministic for
// the same inputs) says what was short. Place does not modify its inputs.
func Place(inst *api.Instance, hosts []HostInfo) (host string, reason string) {
	best := -1
	var bestLoad float64
	for i := range hosts {
		h := &hosts[i]
		if check(inst, h) != fits {
			continue
		}
		l := h.load()
		if best < 0 || better(l, h, bestLoad, &hosts[best]) {
			best, bestLoad = i, l
		}
	}
	if best >= 0 {
		return hosts[best].Name, ""
	}
	return "", explain(inst, hosts)
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
func explain(inst *api.Instance, hosts []HostInfo) string {
	r := inst.Spec.Resources
	var b strings.Builder
	fmt.Fprintf(&b, "no host fits %d vCPUs, %d MiB memory, %d GiB disk", r.VCPUs, r.MemoryMiB, r.DiskGiB)
	if inst.Status.Driver != "" {
		fmt.Fprintf(&b, " (driver %s)", inst.Status.Driver)
	}
	if len(hosts) == 0 {
		b.WriteString(": there are no hosts")
		return b.String()
	}
	var counts [numMisfits]int
	for i := range hosts {
		counts[check(inst, &hosts[i])]++
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
