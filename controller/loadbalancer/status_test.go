package loadbalancer

import (
	"slices"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// hostNet is a host network whose status reports rs.
func hostNet(name string, rs ...*api.HostLBStatus) *api.HostNetwork {
	hn := &api.HostNetwork{Metadata: api.ObjectMeta{Name: name}}
	for _, r := range rs {
		hn.Status.LoadBalancers = append(hn.Status.LoadBalancers, *r)
	}
	return hn
}

func active(r *api.HostLBStatus) *api.HostLBStatus { r.Active = true; return r }

func up(name string) api.HostLBMemberStatus {
	return api.HostLBMemberStatus{Pool: "web", Name: name, Health: api.HealthUp}
}

func down(name string) api.HostLBMemberStatus {
	return api.HostLBMemberStatus{Pool: "web", Name: name, Health: api.HealthDown}
}

func reasons(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason)
	}
	return out
}

func health(st api.LoadBalancerStatus) []string {
	var out []string
	for _, m := range st.Members {
		out = append(out, m.Instance+"="+m.Health)
	}
	return out
}

func TestCompute(t *testing.T) {
	webLB := func(placed ...string) *api.LoadBalancer {
		return withPools(testLB(2, placed...), api.Pool{Name: "web", Group: "web", Port: 80})
	}
	insts := []*api.Instance{member("web-0", "web", "h3", "10.0.0.10"), member("web-1", "web", "h3", "10.0.0.11")}
	ready := hostMap(testHost("h1", api.HostReady), testHost("h2", api.HostReady), testHost("h3", api.HostReady))
	tests := []struct {
		name       string
		lb         *api.LoadBalancer
		hosts      map[string]*api.Host
		hostNets   []*api.HostNetwork
		wantHosts  []string
		wantPhase  string
		wantHealth []string
		wantEvents []string
		check      func(t *testing.T, st api.LoadBalancerStatus)
	}{
		{
			name: "placed, nothing reported", lb: webLB(), hosts: ready,
			wantHosts: []string{"h1", "h2"}, wantPhase: api.LBPending,
			wantHealth: []string{"web-0=unknown", "web-1=unknown"},
			wantEvents: []string{ReasonPlaced, ReasonPlaced},
			check: func(t *testing.T, st api.LoadBalancerStatus) {
				if st.VRID != 1 || st.ObservedGeneration != 1 {
					t.Errorf("vrid %d observedGeneration %d, want 1 and 1", st.VRID, st.ObservedGeneration)
				}
				if c := api.FindCondition(st.Conditions, api.ConditionReady); c == nil || c.Status || c.Reason != ReasonHostsNotReady {
					t.Errorf("Ready = %+v", c)
				}
			},
		},
		{
			name: "health from the active host", lb: webLB("h1", "h2"), hosts: ready,
			hostNets: []*api.HostNetwork{
				hostNet("h1", report(true, down("uid-web-0"), down("uid-web-1"))),
				hostNet("h2", active(report(true, up("uid-web-0"), down("uid-web-1")))),
			},
			wantHosts: []string{"h1", "h2"}, wantPhase: api.LBActive,
			wantHealth: []string{"web-0=up", "web-1=down"},
			wantEvents: []string{ReasonActiveHostChanged, ReasonMemberUp, ReasonMemberDown},
			check: func(t *testing.T, st api.LoadBalancerStatus) {
				if !st.Hosts[1].Active || st.Hosts[0].Active || !st.Hosts[0].Ready {
					t.Errorf("hosts = %+v", st.Hosts)
				}
				if c := api.FindCondition(st.Conditions, api.ConditionReady); c == nil || !c.Status {
					t.Errorf("Ready = %+v", c)
				}
			},
		},
		{
			name: "health from a ready host when none is active", lb: webLB("h1", "h2"), hosts: ready,
			hostNets: []*api.HostNetwork{
				hostNet("h1", &api.HostLBStatus{UID: "uid-lb", Message: "haproxy failed", Members: []api.HostLBMemberStatus{down("uid-web-0")}}),
				hostNet("h2", report(true, up("uid-web-0"), up("uid-web-1"))),
			},
			wantHosts: []string{"h1", "h2"}, wantPhase: api.LBDegraded,
			wantHealth: []string{"web-0=up", "web-1=up"},
			wantEvents: []string{ReasonMemberUp, ReasonMemberUp},
			check: func(t *testing.T, st api.LoadBalancerStatus) {
				if st.Hosts[0].Ready || st.Hosts[0].Message != "haproxy failed" {
					t.Errorf("host h1 = %+v", st.Hosts[0])
				}
			},
		},
		{
			name: "lost host replaced", lb: webLB("h1", "h2"),
			hosts:     hostMap(testHost("h1", api.HostNotReady), testHost("h2", api.HostReady), testHost("h3", api.HostReady)),
			hostNets:  []*api.HostNetwork{hostNet("h2", active(report(true, up("uid-web-0"), up("uid-web-1"))))},
			wantHosts: []string{"h3", "h2"}, wantPhase: api.LBDegraded,
			wantHealth: []string{"web-0=up", "web-1=up"},
			wantEvents: []string{ReasonHostReplaced, ReasonActiveHostChanged, ReasonMemberUp, ReasonMemberUp},
			check: func(t *testing.T, st api.LoadBalancerStatus) {
				if st.Hosts[0].Address != "10.0.0.101" || st.Hosts[0].Priority != PriorityFirst {
					t.Errorf("replacement = %+v, want the lost host's address and priority", st.Hosts[0])
				}
			},
		},
		{
			name: "lost host nothing replaces", lb: webLB("h1", "h2"),
			hosts:     hostMap(testHost("h1", api.HostNotReady), testHost("h2", api.HostReady)),
			hostNets:  []*api.HostNetwork{hostNet("h1", active(report(true))), hostNet("h2", report(true))},
			wantHosts: []string{"h1", "h2"}, wantPhase: api.LBDegraded,
			wantHealth: []string{"web-0=unknown", "web-1=unknown"},
			check: func(t *testing.T, st api.LoadBalancerStatus) {
				if st.Hosts[0].Ready || st.Hosts[0].Active || st.Hosts[0].Message != "host h1 is NotReady" {
					t.Errorf("lost host = %+v", st.Hosts[0])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{LB: tt.lb, Hosts: tt.hosts, Instances: insts, HostNets: map[string]*api.HostNetwork{}, Now: t0}
			for _, hn := range tt.hostNets {
				in.HostNets[hn.Metadata.Name] = hn
			}
			st, evs := Compute(in)
			if got := names(st.Hosts); !slices.Equal(got, tt.wantHosts) {
				t.Errorf("hosts = %v, want %v", got, tt.wantHosts)
			}
			if st.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", st.Phase, tt.wantPhase)
			}
			if got := health(st); !slices.Equal(got, tt.wantHealth) {
				t.Errorf("health = %v, want %v", got, tt.wantHealth)
			}
			if got := reasons(evs); !slices.Equal(got, tt.wantEvents) {
				t.Errorf("events = %v, want %v", got, tt.wantEvents)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// A second pass over an unchanged world changes nothing and records
// nothing; Since moves only with the health.
func TestComputeIsStable(t *testing.T) {
	lb := withPools(testLB(1, "h1"), api.Pool{Name: "web", Group: "web", Port: 80})
	insts := []*api.Instance{member("web-0", "web", "h1", "10.0.0.10")}
	in := Input{LB: lb, Hosts: hostMap(testHost("h1", api.HostReady)), Instances: insts,
		HostNets: map[string]*api.HostNetwork{"h1": hostNet("h1", active(report(true, up("uid-web-0"))))}, Now: t0}
	st, _ := Compute(in)
	lb.Status = st
	in.Now = t0.Add(time.Minute)
	again, evs := Compute(in)
	if !statusEqual(st, again) || len(evs) != 0 {
		t.Fatalf("second pass changed the status or recorded %v", reasons(evs))
	}
	if st.Phase != api.LBActive || !st.Members[0].Since.Equal(t0) {
		t.Errorf("phase %s since %v", st.Phase, st.Members[0].Since)
	}
	in.HostNets["h1"] = hostNet("h1", active(report(true, down("uid-web-0"))))
	lb.Status = again
	third, evs := Compute(in)
	if !slices.Equal(reasons(evs), []string{ReasonMemberDown}) || !third.Members[0].Since.Equal(t0.Add(time.Minute)) {
		t.Errorf("after going down: events %v, since %v", reasons(evs), third.Members[0].Since)
	}
	// All hosts lost after being active: Degraded, not Pending.
	lb.Status = third
	in.Hosts = hostMap(testHost("h1", api.HostNotReady))
	fourth, _ := Compute(in)
	if fourth.Phase != api.LBDegraded {
		t.Errorf("phase with its only host lost = %s, want Degraded", fourth.Phase)
	}
}
