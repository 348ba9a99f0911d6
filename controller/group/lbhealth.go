package group

import (
	"fmt"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// WhyUnhealthy condemns a member its group's load balancer has found down
// for longer than the health check's threshold.
const WhyUnhealthy = "Unhealthy"

// Defaults of the threshold of a load balancer health check (those of
// the agent's probes).
const (
	defaultFailureThreshold = 3
	defaultIntervalSeconds  = 2
)

// LBDownGrace is how long a load balancer must find a member down before
// a group whose health check is of kind loadBalancer replaces it:
// failureThreshold × intervalSeconds (default 3 × 2 s), the time the
// agent's probes take to declare an instance unhealthy.
func LBDownGrace(hc api.HealthCheck) time.Duration {
	n, s := hc.FailureThreshold, hc.IntervalSeconds
	if n <= 0 {
		n = defaultFailureThreshold
	}
	if s <= 0 {
		s = defaultIntervalSeconds
	}
	return time.Duration(n*s) * time.Second
}

// lbVerdict is what a load balancer says of one member instance.
type lbVerdict struct {
	health string
	since  time.Time
}

// verdicts returns lb's verdict on each member instance (by UID): down
// when some pool finds it down (since the latest of those), else up when
// some pool finds it up.
func verdicts(lb *api.LoadBalancer) map[string]lbVerdict {
	out := map[string]lbVerdict{}
	for _, m := range lb.Status.Members {
		var since time.Time
		if m.Since != nil {
			since = *m.Since
		}
		v, had := out[m.InstanceUID]
		switch {
		case m.Health == api.HealthDown:
			if v.health != api.HealthDown || since.After(v.since) {
				v = lbVerdict{api.HealthDown, since}
			}
		case m.Health == api.HealthUp && (!had || v.health == api.HealthUnknown):
			v = lbVerdict{api.HealthUp, since}
		case !had:
			v = lbVerdict{api.HealthUnknown, since}
		}
		out[m.InstanceUID] = v
	}
	return out
}

// ApplyLBHealth judges members by the load balancer g's health check
// names (lb, nil when it does not exist): a member is available only
// while the load balancer finds it up, and a live member it has found
// down for LBDownGrace is condemned (WhyUnhealthy) — unless no member is
// up at all, when the fault is not the members' and replacing them would
// not help. It returns when a down member's grace ends (0: none).
func ApplyLBHealth(g *api.InstanceGroup, members []*Member, lb *api.LoadBalancer, now time.Time) time.Duration {
	hc := g.Spec.HealthCheck
	if hc.Kind != api.HealthLoadBalancer {
		return 0
	}
	var vs map[string]lbVerdict
	if lb != nil {
		vs = verdicts(lb)
	}
	anyUp := false
	for _, m := range members {
		if vs[m.Inst.Metadata.UID].health == api.HealthUp {
			anyUp = true
		}
	}
	grace := LBDownGrace(hc)
	var wake time.Duration
	for _, m := range members {
		v, ok := vs[m.Inst.Metadata.UID]
		if m.Available && v.health != api.HealthUp {
			m.Available = false
			switch {
			case lb == nil:
				m.HealthMessage = fmt.Sprintf("load balancer %s does not exist", hc.LoadBalancer)
			case !ok:
				m.HealthMessage = fmt.Sprintf("not a member of load balancer %s yet", hc.LoadBalancer)
			default:
				m.HealthMessage = fmt.Sprintf("load balancer %s finds it %s", hc.LoadBalancer, v.health)
			}
		}
		if v.health != api.HealthDown || !m.Live() || !anyUp {
			continue
		}
		if left := v.since.Add(grace).Sub(now); left > 0 {
			if wake == 0 || left < wake {
				wake = left
			}
			continue
		}
		m.Condemned = WhyUnhealthy
	}
	return wake
}

// poolingLoadBalancers returns the load balancers of g's project with a
// pool of g's members, other than the one g's health check names (that
// one ApplyLBHealth judges by). Only those serving (phase Active or
// Degraded) count: a load balancer that serves nobody cannot hold a
// rollout back.
func poolingLoadBalancers(g *api.InstanceGroup, lbs []*api.LoadBalancer) []*api.LoadBalancer {
	var out []*api.LoadBalancer
	for _, lb := range lbs {
		if lb.Metadata.Project != g.Metadata.Project || lb.Metadata.DeletionTimestamp != nil ||
			(lb.Status.Phase != api.LBActive && lb.Status.Phase != api.LBDegraded) {
			continue
		}
		hc := g.Spec.HealthCheck
		if hc.Kind == api.HealthLoadBalancer && hc.LoadBalancer == lb.Metadata.Name {
			continue
		}
		for _, p := range lb.Spec.Pools {
			if p.Group == g.Metadata.Name {
				out = append(out, lb)
				break
			}
		}
	}
	return out
}

// ApplyPoolGate holds back the availability of g's members, whatever its
// health check, until every load balancer that pools them sends them
// traffic: a member counts available only once each such load balancer
// finds it up. Without this a rolling update behind a load balancer
// would count a new member available while HAProxy still checks it, and
// drain the old ones with nobody up to take their connections. It only
// gates availability; replacing members the load balancer finds down is
// for groups whose health check is of kind loadBalancer.
func ApplyPoolGate(g *api.InstanceGroup, members []*Member, lbs []*api.LoadBalancer) {
	for _, lb := range poolingLoadBalancers(g, lbs) {
		vs := verdicts(lb)
		for _, m := range members {
			if !m.Available {
				continue
			}
			switch v, ok := vs[m.Inst.Metadata.UID]; {
			case !ok:
				m.Available = false
				m.HealthMessage = fmt.Sprintf("not a member of load balancer %s yet", lb.Metadata.Name)
			case v.health != api.HealthUp:
				m.Available = false
				m.HealthMessage = fmt.Sprintf("load balancer %s finds it %s", lb.Metadata.Name, v.health)
			}
		}
	}
}
