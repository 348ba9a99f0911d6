package fence

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// runningDriver is a driver.Driver whose instances are running until
// stopped.
type runningDriver struct {
	mu      sync.Mutex
	running map[string]bool
}

func (d *runningDriver) Name() string                              { return "stub" }
func (d *runningDriver) Fingerprint(context.Context) driver.Info   { return driver.Info{Available: true} }
func (d *runningDriver) Create(context.Context, driver.Spec) error { return nil }
func (d *runningDriver) Start(context.Context, string) error       { return nil }
func (d *runningDriver) Delete(context.Context, string) error      { return nil }
func (d *runningDriver) List(context.Context) ([]string, error)    { return nil, nil }
func (d *runningDriver) LogPath(string) string                     { return "" }

func (d *runningDriver) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running[id] = false
	return nil
}

func (d *runningDriver) Inspect(_ context.Context, id string) (driver.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running[id] {
		return driver.Status{State: driver.StateRunning}, nil
	}
	return driver.Status{State: driver.StateStopped}, nil
}

type instances []*api.Instance

func (l instances) All() []*api.Instance { return l }

func instance(uid, group string) *api.Instance {
	inst := &api.Instance{Metadata: api.ObjectMeta{Project: "demo", Name: "i-" + uid, UID: uid}, Status: api.InstanceStatus{Driver: "stub"}}
	if group != "" {
		inst.Metadata.Labels = map[string]string{api.LabelGroup: group}
	}
	return inst
}

func TestStopMembers(t *testing.T) {
	d := &runningDriver{running: map[string]bool{"uid-member": true, "uid-solo": true, "uid-recorded": true}}
	reg := driver.NewRegistry()
	reg.Register(d)
	rec := NewRecord(t.TempDir())
	if err := rec.Add(Member{UID: "uid-recorded", Driver: "stub", Instance: "demo/web-0"}); err != nil {
		t.Fatal(err)
	}
	f := New(Config{LeaseTTL: time.Second, Drivers: reg, Record: rec,
		Instances: instances{instance("uid-member", "web"), instance("uid-solo", "")}})

	f.stopMembers(t.Context())
	stopped := f.Stopped()
	slices.Sort(stopped)
	if want := []string{"uid-member", "uid-recorded"}; !slices.Equal(stopped, want) {
		t.Errorf("Stopped = %v, want %v", stopped, want)
	}
	if !d.running["uid-solo"] || d.running["uid-member"] || d.running["uid-recorded"] {
		t.Errorf("running after fencing: %v, want only uid-solo", d.running)
	}
	if !f.WasFenced("uid-member") || f.WasFenced("uid-solo") {
		t.Error("WasFenced is wrong")
	}
	if !f.Announce("uid-member") || f.Announce("uid-member") {
		t.Error("the Fenced event is not due exactly once")
	}
	f.Forget("uid-member")
	if f.WasFenced("uid-member") {
		t.Error("a started member is still fenced")
	}
}

func TestBeatAndAllowStart(t *testing.T) {
	f := New(Config{LeaseTTL: 8 * time.Second})
	if d := f.Deadline(); d != 6*time.Second {
		t.Errorf("Deadline = %s, want 6s", d)
	}
	t0 := time.Now()
	f.Beat(t0)
	f.Beat(t0.Add(-time.Second)) // a late answer to an older beat
	if s := f.since(t0.Add(time.Second)); s != time.Second {
		t.Errorf("since = %s, want 1s from the newest beat", s)
	}
	member, solo := instance("uid-member", "web"), instance("uid-solo", "")
	if !f.activate() || f.activate() {
		t.Error("activate does not report the first activation only")
	}
	if err := f.AllowStart(member); !errors.Is(err, ErrFenced) {
		t.Errorf("AllowStart(member) while fenced = %v, want ErrFenced", err)
	}
	if err := f.AllowStart(solo); err != nil {
		t.Errorf("AllowStart(solo) while fenced = %v", err)
	}
	if !f.Beat(t0.Add(2*time.Second)) || f.Active() {
		t.Error("a beat does not end fencing")
	}
	if err := f.AllowStart(member); err != nil {
		t.Errorf("AllowStart(member) after fencing = %v", err)
	}
}
