package loadbalancer

import (
	"slices"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// DefaultDrainTimeout bounds draining when spec.drainTimeoutSeconds is 0.
const DefaultDrainTimeout = 30 * time.Second

// DrainTimeout returns how long lb lets a leaving member drain.
func DrainTimeout(lb *api.LoadBalancer) time.Duration {
	if lb.Spec.DrainTimeoutSeconds > 0 {
		return time.Duration(lb.Spec.DrainTimeoutSeconds) * time.Second
	}
	return DefaultDrainTimeout
}

// Resolve returns the members of every pool of lb among insts (the
// instances of lb's project, in any order): a pool's group members (by
// label) or its named instances, each placed on a host, not terminated
// and with an address on lb's network. A member being deleted is
// draining. Health and Since are left empty. Members come pool by pool,
// by instance name.
func Resolve(lb *api.LoadBalancer, insts []*api.Instance) []api.LoadBalancerMember {
	byName := make(map[string]*api.Instance, len(insts))
	sorted := make([]*api.Instance, 0, len(insts))
	for _, in := range insts {
		if in.Metadata.Project != lb.Metadata.Project {
			continue
		}
		byName[in.Metadata.Name] = in
		sorted = append(sorted, in)
	}
	slices.SortFunc(sorted, func(a, b *api.Instance) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	var out []api.LoadBalancerMember
	for _, p := range lb.Spec.Pools {
		weight := p.Weight
		if weight <= 0 {
			weight = 1
		}
		seen := map[string]bool{}
		add := func(in *api.Instance, w int) {
			if in == nil || seen[in.Metadata.UID] {
				return
			}
			addr := addressOn(in, lb.Spec.Network)
			if addr == "" || in.Status.Host == "" || in.Status.Phase == api.PhaseTerminated {
				return
			}
			seen[in.Metadata.UID] = true
			m := api.LoadBalancerMember{
				Pool: p.Name, Instance: in.Metadata.Name, InstanceUID: in.Metadata.UID,
				Address: addr, Port: p.Port, Weight: w, State: api.MemberActive,
			}
			if in.Metadata.DeletionTimestamp != nil {
				m.State = api.MemberDraining
			}
			out = append(out, m)
		}
		if p.Group != "" {
			for _, in := range sorted {
				if in.Metadata.Labels[api.LabelGroup] == p.Group {
					add(in, weight)
				}
			}
			continue
		}
		for _, pi := range p.Instances {
			w := weight
			if pi.Weight > 0 {
				w = pi.Weight
			}
			add(byName[pi.Instance], w)
		}
	}
	return out
}

// addressOn returns the instance's address on the named network, or "".
func addressOn(in *api.Instance, network string) string {
	for _, ifc := range in.Status.Interfaces {
		if ifc.Network == network && ifc.IP != "" {
			return ifc.IP
		}
	}
	return ""
}

// Reports maps LB host names to what they report about lb (nil entries
// are left out).
type Reports map[string]*api.HostLBStatus

// ReportsOf collects what the hosts report about the load balancer uid
// in their HostNetworks (by host name).
func ReportsOf(uid string, hosts []api.LoadBalancerHost, hostNets map[string]*api.HostNetwork) Reports {
	out := Reports{}
	for _, h := range hosts {
		hn := hostNets[h.Name]
		if hn == nil {
			continue
		}
		for i := range hn.Status.LoadBalancers {
			if r := &hn.Status.LoadBalancers[i]; r.UID == uid {
				out[h.Name] = r
			}
		}
	}
	return out
}

// drained reports whether every ready LB host of lb has finished the
// connections of member uid of pool. A host that does not list the
// member sends it nothing; with no ready host nothing is sent at all.
func drained(lb *api.LoadBalancer, reports Reports, pool, uid string) bool {
	for _, h := range lb.Status.Hosts {
		r := reports[h.Name]
		if !h.Ready || r == nil || !r.Ready {
			continue
		}
		for _, m := range r.Members {
			if m.Pool == pool && m.Name == uid && !m.Drained {
				return false
			}
		}
	}
	return true
}

// Hold says whether lb needs inst kept (its finalizer): while inst is a
// member, and once it is being deleted until every ready LB host has
// drained it, the drain timeout has passed since its deletion, or its
// host is lost (host is nil when gone). until is when the drain times
// out, for a held member being deleted.
func Hold(lb *api.LoadBalancer, inst *api.Instance, host *api.Host, reports Reports, now time.Time) (hold bool, until time.Time) {
	members := Resolve(lb, []*api.Instance{inst})
	if len(members) == 0 {
		return false, time.Time{}
	}
	del := inst.Metadata.DeletionTimestamp
	if del == nil {
		return true, time.Time{}
	}
	until = del.Add(DrainTimeout(lb))
	if !now.Before(until) || Lost(host) {
		return false, time.Time{}
	}
	for _, m := range members {
		if !drained(lb, reports, m.Pool, m.InstanceUID) {
			return true, until
		}
	}
	return false, time.Time{}
}
