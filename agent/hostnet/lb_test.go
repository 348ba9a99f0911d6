package hostnet

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// fakeLBs is a data plane whose statuses the test sets.
type fakeLBs struct {
	mu       sync.Mutex
	applied  [][]api.HostLoadBalancer
	statuses []api.HostLBStatus
	changed  chan struct{}
}

func (f *fakeLBs) Apply(_ context.Context, lbs []api.HostLoadBalancer) ([]api.HostLBStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, lbs)
	f.statuses = nil
	for _, lb := range lbs {
		f.statuses = append(f.statuses, api.HostLBStatus{UID: lb.UID, Ready: true})
	}
	return slices.Clone(f.statuses), nil
}

func (f *fakeLBs) Statuses() []api.HostLBStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.statuses)
}

func (f *fakeLBs) Changed() <-chan struct{} { return f.changed }
func (f *fakeLBs) Run(ctx context.Context)  { <-ctx.Done() }

// set changes the statuses and says so.
func (f *fakeLBs) set(st []api.HostLBStatus) {
	f.mu.Lock()
	f.statuses = st
	f.mu.Unlock()
	f.changed <- struct{}{}
}

func TestLoopReportsLoadBalancers(t *testing.T) {
	hn := api.HostNetwork{
		Metadata: api.ObjectMeta{Name: "host-1", UID: "hn-1", Generation: 1, ResourceVersion: "7"},
		Spec: api.HostNetworkSpec{
			Networks: []api.HostNetworkEntry{{UID: "net-1", VNI: 4096, CIDR: "10.0.0.0/24", Gateway: "10.0.0.1",
				Ports: []api.HostPort{{Instance: "lb-uid", Driver: "lb", IP: "10.0.0.9", VIP: "10.0.0.10"}}}},
			LoadBalancers: []api.HostLoadBalancer{{UID: "lb-uid", VIP: "10.0.0.10", Address: "10.0.0.9", Prefix: 24}},
		},
	}
	fapi := newFakeAPI(t, hn)
	lbs := &fakeLBs{changed: make(chan struct{})}
	rec := &recorder{}
	var ports Ports
	l := New(Config{Plane: &fakePlane{}, Host: "host-1", API: fapi, Ports: &ports, Metadata: rec, Queue: rec,
		LoadBalancers: lbs, RetryDelay: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	want := []api.HostLBStatus{{UID: "lb-uid", Ready: true}}
	wait.For(t, 5*time.Second, "the load balancer reported", func() bool {
		return reflect.DeepEqual(fapi.status().LoadBalancers, want)
	})
	if _, ok := ports.Get("lb-uid"); ok {
		t.Error("a load balancer's port was recorded as an instance's")
	}
	lbs.mu.Lock()
	if len(lbs.applied) != 1 || len(lbs.applied[0]) != 1 {
		t.Errorf("applied %+v", lbs.applied)
	}
	lbs.mu.Unlock()

	// A change is written at once, without an apply.
	fapi.mu.Lock()
	writes := fapi.writes
	fapi.mu.Unlock()
	active := []api.HostLBStatus{{UID: "lb-uid", Ready: true, Active: true,
		Members: []api.HostLBMemberStatus{{Pool: "default", Name: "m1", Health: api.HealthUp}}}}
	lbs.set(active)
	wait.For(t, 5*time.Second, "the change reported", func() bool {
		return reflect.DeepEqual(fapi.status().LoadBalancers, active)
	})
	// An unchanged status is not written again.
	lbs.set(active)
	lbs.set(active) // returns once the loop took the previous one
	fapi.mu.Lock()
	defer fapi.mu.Unlock()
	if fapi.writes != writes+1 {
		t.Errorf("%d status writes for one change", fapi.writes-writes)
	}
	if st := fapi.hn.Status; !st.Applied || st.ObservedGeneration != 1 {
		t.Errorf("status = %+v", st)
	}
}
