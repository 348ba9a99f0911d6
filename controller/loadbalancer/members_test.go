package loadbalancer

import (
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// member makes an instance of project p on host h with address ip on
// network n (no address when ip is empty).
func member(name, group, h, ip string, edits ...func(*api.Instance)) *api.Instance {
	in := &api.Instance{
		Metadata: api.ObjectMeta{Project: "p", Name: name, UID: "uid-" + name},
		Status:   api.InstanceStatus{Host: h, Phase: api.PhaseRunning},
	}
	if group != "" {
		in.Metadata.Labels = map[string]string{api.LabelGroup: group}
	}
	if ip != "" {
		in.Status.Interfaces = []api.Interface{{Network: "other", IP: "10.9.0.9"}, {Network: "n", IP: ip}}
	}
	for _, e := range edits {
		e(in)
	}
	return in
}

func deletedAt(t time.Time) func(*api.Instance) {
	return func(in *api.Instance) { in.Metadata.DeletionTimestamp = &t }
}

func withPools(lb *api.LoadBalancer, pools ...api.Pool) *api.LoadBalancer {
	lb.Spec.Pools = pools
	return lb
}

func TestResolve(t *testing.T) {
	insts := []*api.Instance{
		member("web-1", "web", "h1", "10.0.0.11"),
		member("web-0", "web", "h2", "10.0.0.10"),
		member("web-2", "web", "h1", "10.0.0.12", deletedAt(t0)),
		member("web-3", "web", "", "10.0.0.13"), // not placed
		member("web-4", "web", "h1", ""),        // no address on n
		member("web-5", "web", "h1", "10.0.0.15", func(in *api.Instance) { in.Status.Phase = api.PhaseTerminated }), // gone
		member("api", "", "h1", "10.0.0.20"),
		member("db", "", "h2", "10.0.0.21"),
		{Metadata: api.ObjectMeta{Project: "q", Name: "api", UID: "uid-q-api"}, Status: api.InstanceStatus{Host: "h1", Interfaces: []api.Interface{{Network: "n", IP: "10.0.0.30"}}}},
	}
	lb := withPools(testLB(1),
		api.Pool{Name: "web", Group: "web", Port: 8080},
		api.Pool{Name: "named", Instances: []api.PoolInstance{{Instance: "db", Weight: 5}, {Instance: "api"}, {Instance: "api"}, {Instance: "missing"}}, Port: 9000, Weight: 2},
	)
	got := Resolve(lb, insts)
	want := []api.LoadBalancerMember{
		{Pool: "web", Instance: "web-0", InstanceUID: "uid-web-0", Address: "10.0.0.10", Port: 8080, Weight: 1, State: api.MemberActive},
		{Pool: "web", Instance: "web-1", InstanceUID: "uid-web-1", Address: "10.0.0.11", Port: 8080, Weight: 1, State: api.MemberActive},
		{Pool: "web", Instance: "web-2", InstanceUID: "uid-web-2", Address: "10.0.0.12", Port: 8080, Weight: 1, State: api.MemberDraining},
		{Pool: "named", Instance: "db", InstanceUID: "uid-db", Address: "10.0.0.21", Port: 9000, Weight: 5, State: api.MemberActive},
		{Pool: "named", Instance: "api", InstanceUID: "uid-api", Address: "10.0.0.20", Port: 9000, Weight: 2, State: api.MemberActive},
	}
	if len(got) != len(want) {
		t.Fatalf("members = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("member %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// report is an LB host's report with the given members.
func report(ready bool, members ...api.HostLBMemberStatus) *api.HostLBStatus {
	return &api.HostLBStatus{UID: "uid-lb", Ready: ready, Members: members}
}

// holdCase is a case of TestHold.
type holdCase struct {
	name      string
	lb        *api.LoadBalancer
	inst      *api.Instance
	host      *api.Host
	reports   Reports
	want      bool
	wantUntil time.Time
}

func TestHold(t *testing.T) {
	lb := withPools(testLB(2, "h1", "h2"), api.Pool{Name: "web", Group: "web", Port: 80})
	lb.Spec.DrainTimeoutSeconds = 60
	lb.Status.Hosts[0].Ready, lb.Status.Hosts[1].Ready = true, true
	ready := testHost("h3", api.HostReady)
	del := t0.Add(-10 * time.Second)
	draining := api.HostLBMemberStatus{Pool: "web", Name: "uid-web-0", Health: api.HealthUp, Sessions: 3}
	drained := api.HostLBMemberStatus{Pool: "web", Name: "uid-web-0", Health: api.HealthUp, Drained: true}
	tests := []holdCase{
		{"member", lb, member("web-0", "web", "h3", "10.0.0.10"), ready, nil, true, time.Time{}},
		{"not a member", lb, member("api", "", "h3", "10.0.0.10"), ready, nil, false, time.Time{}},
		{"draining", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del)), ready,
			Reports{"h1": report(true, drained), "h2": report(true, draining)}, true, del.Add(time.Minute)},
		{"drained on every ready host", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del)), ready,
			Reports{"h1": report(true, drained), "h2": report(true, drained)}, false, time.Time{}},
		{"a host that does not list it sends it nothing", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del)), ready,
			Reports{"h1": report(true, drained), "h2": report(true)}, false, time.Time{}},
		{"drain timed out", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(t0.Add(-time.Minute))), ready,
			Reports{"h1": report(true, draining)}, false, time.Time{}},
		{"host lost", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del)), testHost("h3", api.HostNotReady),
			Reports{"h1": report(true, draining)}, false, time.Time{}},
		{"host gone", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del)), nil,
			Reports{"h1": report(true, draining)}, false, time.Time{}},
		{"terminated", lb, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del), func(in *api.Instance) { in.Status.Phase = api.PhaseTerminated }), ready,
			Reports{"h1": report(true, draining)}, false, time.Time{}},
	}
	// A host that is not ready does not count.
	notReady := withPools(testLB(2, "h1", "h2"), api.Pool{Name: "web", Group: "web", Port: 80})
	notReady.Status.Hosts[0].Ready = true
	tests = append(tests, holdCase{"only ready hosts count", notReady, member("web-0", "web", "h3", "10.0.0.10", deletedAt(del)), ready,
		Reports{"h1": report(true, drained), "h2": report(true, draining)}, false, time.Time{}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, until := Hold(tt.lb, tt.inst, tt.host, tt.reports, t0)
			if got != tt.want || !until.Equal(tt.wantUntil) {
				t.Errorf("Hold = %v, %v; want %v, %v", got, until, tt.want, tt.wantUntil)
			}
		})
	}
}
