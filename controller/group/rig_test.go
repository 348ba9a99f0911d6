package group_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/apiserver"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/controller"
	"github.com/ouroboros-cloud/ouro/controller/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

const wait = 30 * time.Second

// rig is a control plane over a real etcd: the API server (through
// which groups are created and which creates members), every controller
// under a leader guard, hosts that heartbeat, and a fake agent that plays
// the part of the hosts' agents on the instances placed on live hosts.
type rig struct {
	t  *testing.T
	st store.Interface
	cl *client.Client

	mu    sync.Mutex
	alive map[string]func() // host → stop its heartbeat
	// behave says how the fake agent reports a running instance: healthy
	// or not, and its CPU use (negative: no sample).
	behave func(in *api.Instance) (healthy bool, cpu float64)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	cli, st := etcdtest.Start(t)
	log := etcdtest.Quiet()
	adm := admission.New(admission.Config{Store: st})
	srv, err := apiserver.New(apiserver.Config{Store: st, DataDir: t.TempDir(), Logger: log, AuthCacheTTL: -1, Admission: adm})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	admin, err := srv.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cl, err := client.New(client.Config{Server: ts.URL, Token: admin})
	if err != nil {
		t.Fatal(err)
	}
	img := &api.Image{Metadata: api.ObjectMeta{Name: "busybox", Project: "default"},
		Spec:   api.ImageSpec{Format: api.FormatOCI},
		Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}}
	if _, err := st.Create(context.Background(), img, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, cl: cl, alive: map[string]func(){},
		behave: func(*api.Instance) (bool, float64) { return true, -1 }}

	ctx, cancel := context.WithCancel(context.Background())
	guard := etcdtest.NewGuard(t, cli, "/test/leader")
	done := make(chan error, 1)
	go func() {
		done <- controller.RunLeader(ctx, st.WithGuard(guard), controller.Config{Logger: log, Resync: time.Second, InstanceCreator: adm})
	}()
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); r.agent(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-agentDone
		if err := <-done; err != nil {
			t.Errorf("RunLeader: %v", err)
		}
	})
	return r
}

// addHost registers a container host and keeps it heartbeating (lease
// 2 s) until stopHost.
func (r *rig) addHost(name string) {
	r.t.Helper()
	h := &api.Host{Metadata: api.ObjectMeta{Name: name},
		Status: api.HostStatus{Capacity: api.Resources{VCPUs: 64, MemoryMiB: 64 << 10, DiskGiB: 1000},
			Drivers: []string{api.DriverContainer}, Architecture: "amd64"}}
	if _, err := r.st.Create(context.Background(), h, store.CreateOptions{}); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	renew := func() error { return r.st.Presence().Renew(ctx, name, 2*time.Second) }
	if err := renew(); err != nil {
		r.t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = renew()
			}
		}
	}()
	stop := func() { cancel(); <-stopped }
	r.mu.Lock()
	r.alive[name] = stop
	r.mu.Unlock()
	r.t.Cleanup(func() { r.stopHost(name) })
	r.eventually(name+" Ready", func() bool {
		var h api.Host
		return r.st.Get(context.Background(), api.HostKind, "", name, &h) == nil && h.Status.Phase == api.HostReady
	})
}

// stopHost stops a host's heartbeat and its fake agent, as if it died.
func (r *rig) stopHost(name string) {
	r.mu.Lock()
	stop := r.alive[name]
	delete(r.alive, name)
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (r *rig) isAlive(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alive[host] != nil
}

// agent reports, for every instance placed on a live host, what its
// agent would: Terminated once deleted, else Running with a Healthy
// condition and a CPU sample as behave says.
func (r *rig) agent(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		objs, _, err := r.st.List(ctx, api.InstanceKind, "", store.ListOptions{})
		if err != nil {
			continue
		}
		for _, o := range objs {
			in := o.(*api.Instance)
			if in.Status.Host == "" || !r.isAlive(in.Status.Host) {
				continue
			}
			next := *in
			next.Status.Conditions = append([]api.Condition(nil), in.Status.Conditions...)
			if in.Metadata.DeletionTimestamp != nil {
				next.Status.Phase = api.PhaseTerminated
			} else {
				r.mu.Lock()
				ok, cpu := r.behave(in)
				r.mu.Unlock()
				next.Status.Phase = api.PhaseRunning
				next.Status.Conditions = api.SetCondition(next.Status.Conditions,
					api.Condition{Type: api.ConditionHealthy, Status: ok, Reason: "Probe", Message: map[bool]string{true: "ok", false: "connection refused"}[ok]}, time.Now())
				if cpu >= 0 {
					next.Status.Usage = &api.Usage{CPUPercent: cpu, SampledAt: time.Now()}
				}
			}
			if next.Status.Phase == in.Status.Phase && condEqual(next.Status.Conditions, in.Status.Conditions) &&
				(next.Status.Usage == nil || (in.Status.Usage != nil && time.Since(in.Status.Usage.SampledAt) < 2*time.Second &&
					in.Status.Usage.CPUPercent == next.Status.Usage.CPUPercent)) {
				continue
			}
			_ = r.st.Update(ctx, &next)
		}
	}
}

func condEqual(a, b []api.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status {
			return false
		}
	}
	return true
}

func (r *rig) eventually(what string, cond func() bool) {
	r.t.Helper()
	etcdtest.Eventually(r.t, wait, what, cond)
}

// members returns the instances of group name, by name.
func (r *rig) members(name string) map[string]*api.Instance {
	r.t.Helper()
	sel, _ := api.ParseSelector(api.LabelGroup + "=" + name)
	objs, _, err := r.st.List(context.Background(), api.InstanceKind, "default", store.ListOptions{Selector: sel})
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]*api.Instance{}
	for _, o := range objs {
		out[o.Meta().Name] = o.(*api.Instance)
	}
	return out
}

func names(m map[string]*api.Instance) string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (r *rig) group(name string) *api.InstanceGroup {
	r.t.Helper()
	var g api.InstanceGroup
	if err := r.cl.Get(context.Background(), api.InstanceGroupKind, "default", name, &g); err != nil {
		r.t.Fatal(err)
	}
	return &g
}

// edit changes a group through the API, retrying on conflicts.
func (r *rig) edit(name string, fn func(*api.InstanceGroup)) {
	r.t.Helper()
	for range 10 {
		g := r.group(name)
		fn(g)
		err := r.cl.Update(context.Background(), g)
		if err == nil {
			return
		}
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeConflict {
			r.t.Fatalf("update group %s: %v", name, err)
		}
	}
	r.t.Fatalf("update group %s: too many conflicts", name)
}

// settled reports whether group name has converged to n healthy members
// of its current revision, all running on live hosts.
func (r *rig) settled(name string, n int) bool {
	g := r.group(name)
	ms := r.members(name)
	if g.Status.ObservedGeneration != g.Metadata.Generation || g.Status.Healthy != n || g.Status.Updated != n ||
		g.Status.Members != n || len(ms) != n {
		return false
	}
	for _, in := range ms {
		if in.Status.Phase != api.PhaseRunning || !r.isAlive(in.Status.Host) || in.Metadata.DeletionTimestamp != nil {
			return false
		}
	}
	return true
}

// events returns "reason: message" of the events about group name.
func (r *rig) events(name string) []string {
	objs, _, err := r.st.List(context.Background(), api.EventKind, "default", store.ListOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		e := o.(*api.Event)
		if e.Object.Kind == api.InstanceGroupKind.Name && e.Object.Name == name {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// hasEvent reports whether an event about group name with that reason
// and text appears within a few seconds: the recorder writes events after
// the controller's status write, so a test that saw the status may ask
// before the event is stored.
func (r *rig) hasEvent(name, reason, text string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; {
		for _, e := range r.events(name) {
			if strings.HasPrefix(e, reason+":") && strings.Contains(e, text) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a condition with a deadline
	}
}

func newGroup(name string, count int) *api.InstanceGroup {
	return &api.InstanceGroup{Metadata: api.ObjectMeta{Name: name, Project: "default"},
		Spec: api.InstanceGroupSpec{Count: count, Template: api.InstanceTemplate{Image: "busybox", Flavor: "tiny",
			Command: []string{"sleep", "3600"}, Labels: map[string]string{"app": name}}}}
}

func (r *rig) create(g *api.InstanceGroup) {
	r.t.Helper()
	if _, err := r.cl.Create(context.Background(), g, client.CreateOptions{}); err != nil {
		r.t.Fatalf("create group %s: %v", g.Metadata.Name, err)
	}
}
