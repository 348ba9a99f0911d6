package loadbalancer

import (
	"fmt"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Reasons of the load balancer's events and Ready condition.
const (
	ReasonPlaced            = "Placed"
	ReasonHostReplaced      = "HostReplaced"
	ReasonActiveHostChanged = "ActiveHostChanged"
	ReasonMemberUp          = "MemberUp"
	ReasonMemberDown        = "MemberDown"
	ReasonHostsReady        = "HostsReady"
	ReasonHostsNotReady     = "HostsNotReady"
	ReasonNotPlaced         = "NotPlaced"
)

// Input is what one pass over a load balancer computes from.
type Input struct {
	LB *api.LoadBalancer
	// Hosts are all the hosts, by name; Load counts the LB hosts of the
	// other load balancers on each host.
	Hosts map[string]*api.Host
	Load  map[string]int
	// Network are the other load balancers of LB's network (for the VRID).
	Network []*api.LoadBalancer
	// Instances are the instances of LB's project.
	Instances []*api.Instance
	// HostNets are the host networks, by host name.
	HostNets map[string]*api.HostNetwork
	Now      time.Time
}

// Event is an event to record on the load balancer once its status is
// written.
type Event struct {
	Type, Reason, Message string
}

// Compute returns the status the load balancer should have and the events
// that go with the change from its current status: placement, member
// resolution, health aggregation from its hosts' reports, phase and
// condition Ready.
func Compute(in Input) (api.LoadBalancerStatus, []Event) {
	lb, prev := in.LB, in.LB.Status
	st := prev
	st.ObservedGeneration = lb.Metadata.Generation
	if vrid := AllocateVRID(lb, in.Network); vrid != 0 {
		st.VRID = vrid
	}
	var events []Event
	hosts, _ := Place(lb, in.Hosts, in.Load)
	for i, h := range hosts {
		switch {
		case i < len(prev.Hosts) && prev.Hosts[i].Name == h.Name:
		case i < len(prev.Hosts):
			events = append(events, Event{api.EventWarning, ReasonHostReplaced,
				fmt.Sprintf("host %s is lost: moved to host %s (address %s)", prev.Hosts[i].Name, h.Name, h.Address)})
		default:
			events = append(events, Event{api.EventNormal, ReasonPlaced,
				fmt.Sprintf("placed on host %s (address %s, priority %d)", h.Name, h.Address, h.Priority)})
		}
	}
	reports := ReportsOf(lb.Metadata.UID, hosts, in.HostNets)
	var source *api.HostLBStatus // whose member health counts
	for i := range hosts {
		h := &hosts[i]
		host, r := in.Hosts[h.Name], reports[h.Name]
		h.Ready, h.Active, h.Message = false, false, ""
		switch {
		case host == nil:
			h.Message = "host " + h.Name + " no longer exists"
		case Lost(host):
			h.Message = "host " + h.Name + " is " + string(host.Status.Phase)
		case r == nil:
			h.Message = "waiting for the host to report"
		default:
			h.Ready, h.Active = r.Ready, r.Active && r.Ready
			if !r.Ready {
				h.Message = r.Message
				if h.Message == "" {
					h.Message = "not ready"
				}
			}
			if h.Active || (source == nil && h.Ready) {
				source = r
			}
		}
	}
	st.Hosts = hosts
	if prevActive, active := activeHost(prev.Hosts), activeHost(hosts); active != "" && active != prevActive {
		msg := fmt.Sprintf("host %s holds the VIP %s", active, prev.VIP)
		if prevActive != "" {
			msg += " (was " + prevActive + ")"
		}
		events = append(events, Event{api.EventNormal, ReasonActiveHostChanged, msg})
	}
	st.Members, events = memberHealth(Resolve(lb, in.Instances), prev.Members, source, in.Now, events)
	st.Phase, st.Conditions = phase(lb, hosts, prev, in.Now)
	return st, events
}

// activeHost returns the name of the host that holds the VIP, or "".
func activeHost(hosts []api.LoadBalancerHost) string {
	for _, h := range hosts {
		if h.Active {
			return h.Name
		}
	}
	return ""
}

// memberHealth fills the members' health from source (nil: unknown),
// keeping Since while the health stays, and adds an event for each member
// that went up or down.
func memberHealth(members, prev []api.LoadBalancerMember, source *api.HostLBStatus, now time.Time, events []Event) ([]api.LoadBalancerMember, []Event) {
	type id struct{ pool, uid string }
	before := map[id]api.LoadBalancerMember{}
	for _, m := range prev {
		before[id{m.Pool, m.InstanceUID}] = m
	}
	health := map[id]string{}
	if source != nil {
		for _, m := range source.Members {
			health[id{m.Pool, m.Name}] = m.Health
		}
	}
	for i := range members {
		m := &members[i]
		k := id{m.Pool, m.InstanceUID}
		m.Health = health[k]
		if m.Health != api.HealthUp && m.Health != api.HealthDown {
			m.Health = api.HealthUnknown
		}
		old, had := before[k]
		if had && old.Health == m.Health && old.Since != nil {
			m.Since = old.Since
			continue
		}
		t := now.UTC()
		m.Since = &t
		if !had && m.Health == api.HealthUnknown {
			continue
		}
		switch m.Health {
		case api.HealthUp:
			events = append(events, Event{api.EventNormal, ReasonMemberUp,
				fmt.Sprintf("member %s (%s:%d) of pool %s is up", m.Instance, m.Address, m.Port, m.Pool)})
		case api.HealthDown:
			events = append(events, Event{api.EventWarning, ReasonMemberDown,
				fmt.Sprintf("member %s (%s:%d) of pool %s is down", m.Instance, m.Address, m.Port, m.Pool)})
		}
	}
	return members, events
}

// phase returns the phase and conditions of a load balancer on hosts.
func phase(lb *api.LoadBalancer, hosts []api.LoadBalancerHost, prev api.LoadBalancerStatus, now time.Time) (string, []api.Condition) {
	want := Wanted(lb)
	ready := 0
	var why string
	for _, h := range hosts {
		if h.Ready {
			ready++
		} else if why == "" {
			why = "host " + h.Name + ": " + h.Message
		}
	}
	cond := api.Condition{Type: api.ConditionReady}
	var p string
	switch {
	case want > 0 && ready == want:
		p = api.LBActive
		cond.Status, cond.Reason = true, ReasonHostsReady
		cond.Message = fmt.Sprintf("%d of %d hosts serve", ready, want)
	case len(hosts) < max(want, 1):
		cond.Reason = ReasonNotPlaced
		cond.Message = fmt.Sprintf("%d of %d hosts placed: no other Ready, schedulable host", len(hosts), max(lb.Spec.Hosts, 1))
		if len(lb.Status.PortAddresses) == 0 {
			cond.Message = "no port address claimed yet"
		}
	default:
		cond.Reason = ReasonHostsNotReady
		cond.Message = fmt.Sprintf("%d of %d hosts serve; %s", ready, want, why)
	}
	if p == "" {
		p = api.LBDegraded
		if ready == 0 && (prev.Phase == "" || prev.Phase == api.LBPending) {
			p = api.LBPending
		}
	}
	return p, api.SetCondition(append([]api.Condition(nil), prev.Conditions...), cond, now.UTC())
}
