package group

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// lbMembers returns available, live members web-0 … web-<n-1> with UIDs
// uid-0 ….
func lbMembers(n int) []*Member {
	out := make([]*Member, 0, n)
	for i := range n {
		out = append(out, &Member{Index: i, Current: true, Available: true,
			Inst: &api.Instance{Metadata: api.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Project: "p", UID: fmt.Sprintf("uid-%d", i)},
				Status: api.InstanceStatus{Phase: api.PhaseRunning}}})
	}
	return out
}

// lbSaying is load balancer front whose status says health (with since)
// of members uid-<i> for each "i=health@secondsAgo".
func lbSaying(health ...string) *api.LoadBalancer {
	lb := &api.LoadBalancer{Metadata: api.ObjectMeta{Project: "p", Name: "front"}}
	for _, h := range health {
		idx, rest, _ := strings.Cut(h, "=")
		hl, ago, _ := strings.Cut(rest, "@")
		i, err1 := strconv.Atoi(idx)
		secs, err2 := strconv.Atoi(ago)
		if err1 != nil || err2 != nil {
			panic(fmt.Sprintf("bad health %q", h))
		}
		since := t0.Add(-time.Duration(secs) * time.Second)
		lb.Status.Members = append(lb.Status.Members, api.LoadBalancerMember{Pool: "web", InstanceUID: fmt.Sprintf("uid-%d", i), Health: hl, Since: &since})
	}
	return lb
}

func TestApplyLBHealth(t *testing.T) {
	lbCheck := api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "front"}
	tests := []struct {
		name          string
		check         api.HealthCheck
		lb            *api.LoadBalancer
		n             int
		wantAvailable []bool
		wantCondemned []string
		wantWake      time.Duration
	}{
		{"other kind: untouched", api.HealthCheck{Kind: api.HealthTCP, Port: 80}, nil, 2,
			[]bool{true, true}, []string{"", ""}, 0},
		{"no load balancer: none available", lbCheck, nil, 2,
			[]bool{false, false}, []string{"", ""}, 0},
		{"up and not yet a member", lbCheck, lbSaying("0=up@1"), 2,
			[]bool{true, false}, []string{"", ""}, 0},
		{"unknown is not available", lbCheck, lbSaying("0=unknown@1", "1=up@1"), 2,
			[]bool{false, true}, []string{"", ""}, 0},
		{"down within the grace", lbCheck, lbSaying("0=down@2", "1=up@1"), 2,
			[]bool{false, true}, []string{"", ""}, 4 * time.Second},
		{"down past the grace: replaced", lbCheck, lbSaying("0=down@6", "1=up@1"), 2,
			[]bool{false, true}, []string{WhyUnhealthy, ""}, 0},
		{"threshold from the check", api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "front", FailureThreshold: 2, IntervalSeconds: 5},
			lbSaying("0=down@6", "1=up@1"), 2, []bool{false, true}, []string{"", ""}, 4 * time.Second},
		{"every member down: nobody replaced", lbCheck, lbSaying("0=down@60", "1=down@60"), 2,
			[]bool{false, false}, []string{"", ""}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGroup(tt.n, nil, nil)
			g.Spec.HealthCheck = tt.check
			ms := lbMembers(tt.n)
			wake := ApplyLBHealth(g, ms, tt.lb, t0)
			var avail []bool
			var condemned []string
			for _, m := range ms {
				avail, condemned = append(avail, m.Available), append(condemned, m.Condemned)
			}
			if !slices.Equal(avail, tt.wantAvailable) || !slices.Equal(condemned, tt.wantCondemned) || wake != tt.wantWake {
				t.Errorf("available %v condemned %q wake %v; want %v %q %v", avail, condemned, wake, tt.wantAvailable, tt.wantCondemned, tt.wantWake)
			}
		})
	}
}

// A member the load balancer finds down is replaced: Plan deletes it and
// creates another; a rollout waits for the new member to be up.
func TestLBHealthPlans(t *testing.T) {
	g := testGroup(2, nil, nil)
	g.Spec.HealthCheck = api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "front"}
	ms := lbMembers(2)
	ApplyLBHealth(g, ms, lbSaying("0=down@60", "1=up@60"), t0)
	st := Plan(g, ms, 2, func(string) bool { return false })
	if len(st.Delete) != 1 || st.Delete[0].Member.Name() != "web-0" || st.Delete[0].Why != WhyUnhealthy {
		t.Errorf("deletions = %+v, want web-0 for %s", st.Delete, WhyUnhealthy)
	}
	if len(st.Create) != 1 {
		t.Errorf("creations = %+v, want one replacement", st.Create)
	}
	if msg := unhealthyMessage(ms[0]); msg != "load balancer front finds it down" {
		t.Errorf("message = %q", msg)
	}
}

func TestApplyPoolGate(t *testing.T) {
	pooling := func(phase string, health ...string) *api.LoadBalancer {
		lb := lbSaying(health...)
		lb.Spec.Pools = []api.Pool{{Name: "web", Group: "web", Port: 80}}
		lb.Status.Phase = phase
		return lb
	}
	tests := []struct {
		name          string
		check         api.HealthCheck
		lbs           []*api.LoadBalancer
		wantAvailable []bool
	}{
		{"no load balancer", api.HealthCheck{}, nil, []bool{true, true, true}},
		{"pooled: up, down, not a member", api.HealthCheck{}, []*api.LoadBalancer{pooling(api.LBActive, "0=up@1", "1=down@1")},
			[]bool{true, false, false}},
		{"pooled, degraded still gates", api.HealthCheck{}, []*api.LoadBalancer{pooling(api.LBDegraded, "0=up@1", "1=up@1", "2=unknown@1")},
			[]bool{true, true, false}},
		{"a load balancer that serves nobody yet does not gate", api.HealthCheck{}, []*api.LoadBalancer{pooling(api.LBPending)},
			[]bool{true, true, true}},
		{"another project's load balancer does not gate", api.HealthCheck{}, func() []*api.LoadBalancer {
			lb := pooling(api.LBActive)
			lb.Metadata.Project = "q"
			return []*api.LoadBalancer{lb}
		}(), []bool{true, true, true}},
		{"the health check's own load balancer is ApplyLBHealth's", api.HealthCheck{Kind: api.HealthLoadBalancer, LoadBalancer: "front"},
			[]*api.LoadBalancer{pooling(api.LBActive)}, []bool{true, true, true}},
		{"a pool of another group does not gate", api.HealthCheck{}, func() []*api.LoadBalancer {
			lb := pooling(api.LBActive)
			lb.Spec.Pools[0].Group = "api"
			return []*api.LoadBalancer{lb}
		}(), []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &api.InstanceGroup{Metadata: api.ObjectMeta{Project: "p", Name: "web"}, Spec: api.InstanceGroupSpec{HealthCheck: tt.check}}
			members := lbMembers(3)
			ApplyPoolGate(g, members, tt.lbs)
			for i, m := range members {
				if m.Available != tt.wantAvailable[i] {
					t.Errorf("member %d available = %v, want %v (%s)", i, m.Available, tt.wantAvailable[i], m.HealthMessage)
				}
				if !m.Available && m.HealthMessage == "" {
					t.Errorf("member %d held back without a message", i)
				}
			}
		})
	}
}
