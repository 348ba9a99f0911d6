package loadbalancer

import (
	"slices"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// VRRP priorities of the first and the second LB host: the first holds
// the VIP while it is healthy.
const (
	PriorityFirst  = 200
	PrioritySecond = 150
)

// MaxVRID is the largest VRRP router id.
const MaxVRID = 255

// Wanted returns how many hosts lb runs on: spec.hosts (default 1),
// bounded by the port addresses the server claimed for it.
func Wanted(lb *api.LoadBalancer) int {
	return min(max(lb.Spec.Hosts, 1), len(lb.Status.PortAddresses))
}

// priority returns the VRRP priority of the i-th LB host.
func priority(i int) int {
	if i == 0 {
		return PriorityFirst
	}
	return PrioritySecond
}

// Lost reports whether an LB host is lost: gone, or NotReady (its
// presence lease ran out).
func Lost(h *api.Host) bool {
	return h == nil || h.Status.Phase != api.HostReady
}

// eligible reports whether a new LB host may be placed on h: Ready,
// schedulable, real (not hollow) and with an underlay address.
func eligible(h *api.Host) bool {
	return h.Status.Phase == api.HostReady && !h.Spec.Unschedulable &&
		h.Metadata.Labels[api.LabelHollow] == "" && h.Status.Address != ""
}

// Place returns the hosts lb should run on: the current ones that are not
// lost, a new host in place of each lost one (keeping its address and
// priority), and new hosts up to Wanted, each on a different host, the
// least loaded first (load counts the LB hosts already on a host; then
// the share of its memory allocated to instances). A lost host nothing
// can replace stays, so that it serves again when it comes back.
// replaced lists the names of the lost hosts that were replaced.
func Place(lb *api.LoadBalancer, hosts map[string]*api.Host, load map[string]int) (out []api.LoadBalancerHost, replaced []string) {
	n := Wanted(lb)
	cur := lb.Status.Hosts
	if len(cur) > n {
		cur = cur[:n]
	}
	taken := map[string]bool{}
	for _, h := range cur {
		taken[h.Name] = true
	}
	candidates := make([]*api.Host, 0, len(hosts))
	for _, h := range hosts {
		if eligible(h) {
			candidates = append(candidates, h)
		}
	}
	slices.SortFunc(candidates, func(a, b *api.Host) int {
		if c := load[a.Metadata.Name] - load[b.Metadata.Name]; c != 0 {
			return c
		}
		if fa, fb := memoryShare(a), memoryShare(b); fa != fb {
			if fa < fb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
	pick := func() string {
		for _, h := range candidates {
			if !taken[h.Metadata.Name] {
				taken[h.Metadata.Name] = true
				return h.Metadata.Name
			}
		}
		return ""
	}
	for i := range n {
		addr := lb.Status.PortAddresses[i]
		if i < len(cur) {
			h := cur[i]
			h.Address, h.Priority = addr, priority(i)
			if Lost(hosts[h.Name]) {
				if name := pick(); name != "" {
					replaced = append(replaced, h.Name)
					h = api.LoadBalancerHost{Name: name, Address: addr, Priority: priority(i)}
				}
			}
			out = append(out, h)
			continue
		}
		name := pick()
		if name == "" {
			break
		}
		out = append(out, api.LoadBalancerHost{Name: name, Address: addr, Priority: priority(i)})
	}
	return out, replaced
}

// memoryShare is the share of a host's memory allocated to instances.
func memoryShare(h *api.Host) float64 {
	if h.Status.Capacity.MemoryMiB <= 0 {
		return 1
	}
	return float64(h.Status.Allocated.MemoryMiB) / float64(h.Status.Capacity.MemoryMiB)
}

// AllocateVRID returns lb's VRRP router id: the one it has unless another
// load balancer of the network that sorts first (by creation, then UID)
// has it too, else the smallest id none of others (the network's load
// balancers) has. It returns 0 when all 255 are taken.
func AllocateVRID(lb *api.LoadBalancer, others []*api.LoadBalancer) int {
	used := map[int]bool{}
	keep := lb.Status.VRID >= 1 && lb.Status.VRID <= MaxVRID
	for _, o := range others {
		if o.Metadata.UID == lb.Metadata.UID || o.Status.VRID == 0 {
			continue
		}
		used[o.Status.VRID] = true
		if o.Status.VRID == lb.Status.VRID && before(o, lb) {
			keep = false
		}
	}
	if keep {
		return lb.Status.VRID
	}
	for id := 1; id <= MaxVRID; id++ {
		if !used[id] {
			return id
		}
	}
	return 0
}

// before orders load balancers by creation, then UID.
func before(a, b *api.LoadBalancer) bool {
	ta, tb := a.Metadata.CreationTimestamp, b.Metadata.CreationTimestamp
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Metadata.UID < b.Metadata.UID
}
