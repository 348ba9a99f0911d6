package scheduler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

// createHosts makes n Ready hosts with room for 64 small instances each.
func createHosts(tb testing.TB, st store.Interface, n int) {
	tb.Helper()
	parallel(tb, n, func(i int) error {
		h := &api.Host{
			Kind:     api.HostKind.Name,
			Metadata: api.ObjectMeta{Name: fmt.Sprintf("hollow-%04d", i)},
			Spec:     api.HostSpec{Taints: []string{api.TaintHollow}},
			Status: api.HostStatus{
				Phase:    api.HostReady,
				Capacity: api.Resources{VCPUs: 64, MemoryMiB: 64 * 1024, DiskGiB: 1000},
				Drivers:  []string{"container"},
			},
		}
		_, err := st.Create(context.Background(), h, store.CreateOptions{})
		return err
	})
}

// createInstances makes n Pending instances named prefix-i.
func createInstances(tb testing.TB, st store.Interface, prefix string, n int) {
	tb.Helper()
	parallel(tb, n, func(i int) error {
		inst := &api.Instance{
			Kind:     api.InstanceKind.Name,
			Metadata: api.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Project: "bench"},
			Spec: api.InstanceSpec{
				Resources:   api.Resources{VCPUs: 1, MemoryMiB: 256, DiskGiB: 1},
				Tolerations: []string{api.TaintHollow},
			},
			Status: api.InstanceStatus{Phase: api.PhasePending, Driver: "container"},
		}
		_, err := st.Create(context.Background(), inst, store.CreateOptions{})
		return err
	})
}

// parallel runs f(0..n-1) on 32 goroutines and fails tb on any error.
func parallel(tb testing.TB, n int, f func(i int) error) {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// run starts informers and a scheduler over st; stop waits for them.
func run(tb testing.TB, st store.Interface) (s *Scheduler, instances *cache.Informer, stop func()) {
	tb.Helper()
	log := etcdtest.Quiet()
	hosts := cache.New(st, api.HostKind, 0, log)
	instances = cache.New(st, api.InstanceKind, 0, log)
	rec := record.New(st, "scheduler").WithLogger(log)
	s = New(Options{Store: st, Hosts: hosts, Instances: instances, Recorder: rec, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range []func(context.Context) error{hosts.Run, instances.Run, s.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx) }()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait(); rec.Wait() }) }
	tb.Cleanup(stop)
	return s, instances, stop
}

// placed counts the cached instances with a host.
func placed(instances *cache.Informer) int {
	n := 0
	for _, o := range instances.List() {
		if o.(*api.Instance).Status.Host != "" {
			n++
		}
	}
	return n
}

// TestNoDoubleBooking fills hosts exactly and checks that the scheduler
// never exceeds a host's capacity, and that what does not fit waits.
func TestNoDoubleBooking(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHosts(t, st, 4) // 4 × 64 vCPUs
	createInstances(t, st, "fill", 4*64+3)
	s, instances, _ := run(t, st)
	wait.For(t, 60*time.Second, "hosts full", func() bool { return placed(instances) == 4*64 })
	wait.For(t, 60*time.Second, "the rest marked unschedulable", func() bool {
		n := 0
		for _, o := range instances.List() {
			if o.(*api.Instance).Status.Reason == api.ReasonInsufficientCapacity {
				n++
			}
		}
		return n == 3
	})
	for _, h := range s.Snapshot() {
		if h.Allocated.VCPUs != 64 || h.Instances != 64 {
			t.Errorf("host %s: allocated %+v with %d instances, want 64 vCPUs", h.Name, h.Allocated, h.Instances)
		}
	}
	perHost := map[string]int{}
	for _, o := range instances.List() {
		if h := o.(*api.Instance).Status.Host; h != "" {
			perHost[h]++
		}
	}
	for h, n := range perHost {
		if n > 64 {
			t.Errorf("host %s got %d instances, capacity 64", h, n)
		}
	}

	// Deleting one placed instance frees room for one waiting instance.
	for _, o := range instances.List() {
		if inst := o.(*api.Instance); inst.Status.Host != "" {
			m := inst.Metadata
			if err := st.Delete(context.Background(), api.InstanceKind, m.Project, m.Name, ""); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	wait.For(t, 30*time.Second, "a waiting instance placed after a delete", func() bool {
		return placed(instances) == 4*64 && len(instances.List()) == 4*64+2
	})
}

// BenchmarkSchedule measures placements per second with 1,000 hosts on a
// real embedded etcd: each iteration creates a backlog of Pending
// instances, then starts the scheduler and waits until all are placed.
func BenchmarkSchedule(b *testing.B) {
	const hosts, perIter = 1000, 3000
	st := store.NewEtcd(etcdtest.Client(b))
	createHosts(b, st, hosts)
	var total int
	var elapsed time.Duration
	iter := 0
	for b.Loop() {
		b.StopTimer()
		createInstances(b, st, fmt.Sprintf("b%d", iter), perIter)
		iter++
		b.StartTimer()
		start := time.Now()
		_, instances, stop := run(b, st)
		wait.For(b, 5*time.Minute, "backlog placed", func() bool { return placed(instances) == iter*perIter })
		elapsed += time.Since(start)
		total += perIter
		b.StopTimer()
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "placements/s")
}

// TestHardAntiAffinity places a group with hard anti-affinity on three
// hosts: one member per host, the fourth waits with a message saying
// anti-affinity, and gets a host once a member is gone.
func TestHardAntiAffinity(t *testing.T) {
	st := store.NewEtcd(etcdtest.Client(t))
	createHosts(t, st, 3)
	ctx := context.Background()
	for i := range 4 {
		inst := &api.Instance{
			Kind:     api.InstanceKind.Name,
			Metadata: api.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Project: "p"},
			Spec: api.InstanceSpec{
				Resources:   api.Resources{VCPUs: 1, MemoryMiB: 256, DiskGiB: 1},
				Tolerations: []string{api.TaintHollow},
				Placement:   &api.Placement{AntiAffinityKey: "web", AntiAffinity: api.AntiAffinityHard},
			},
			Status: api.InstanceStatus{Phase: api.PhasePending, Driver: "container"},
		}
		if _, err := st.Create(ctx, inst, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Another project's instance with the same key does not count.
	other := &api.Instance{
		Kind:     api.InstanceKind.Name,
		Metadata: api.ObjectMeta{Name: "web-x", Project: "q"},
		Spec: api.InstanceSpec{
			Resources:   api.Resources{VCPUs: 1, MemoryMiB: 256, DiskGiB: 1},
			Tolerations: []string{api.TaintHollow},
			Placement:   &api.Placement{AntiAffinityKey: "web", AntiAffinity: api.AntiAffinityHard},
		},
		Status: api.InstanceStatus{Phase: api.PhasePending, Driver: "container"},
	}
	if _, err := st.Create(ctx, other, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, instances, _ := run(t, st)
	var waiting *api.Instance
	wait.For(t, 30*time.Second, "3 of p placed, one waiting, q placed", func() bool {
		waiting = nil
		n := 0
		for _, o := range instances.List() {
			inst := o.(*api.Instance)
			switch {
			case inst.Status.Host != "":
				n++
			case inst.Status.Reason == api.ReasonInsufficientCapacity:
				waiting = inst
			}
		}
		return n == 4 && waiting != nil
	})
	if !strings.Contains(waiting.Status.Message, "anti-affinity") {
		t.Errorf("message %q does not mention anti-affinity", waiting.Status.Message)
	}
	perHost := map[string][]string{}
	var victim *api.Instance
	for _, o := range instances.List() {
		inst := o.(*api.Instance)
		if inst.Metadata.Project == "p" && inst.Status.Host != "" {
			perHost[inst.Status.Host] = append(perHost[inst.Status.Host], inst.Metadata.Name)
			victim = inst
		}
	}
	if len(perHost) != 3 {
		t.Fatalf("members per host = %v, want one on each of 3 hosts", perHost)
	}

	// A member goes (terminated): the waiting one takes its host.
	var gone api.Instance // a copy: cached objects are shared
	if err := st.Get(ctx, api.InstanceKind, victim.Metadata.Project, victim.Metadata.Name, &gone); err != nil {
		t.Fatal(err)
	}
	gone.Status.Phase = api.PhaseTerminated
	if err := st.Update(ctx, &gone); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "waiting member placed on the freed host", func() bool {
		o, ok := instances.Get(waiting.Metadata.Project + "/" + waiting.Metadata.Name)
		return ok && o.(*api.Instance).Status.Host == victim.Status.Host
	})
}
