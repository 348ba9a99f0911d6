// Package fence stops the instance-group members of a host whose agent
// cannot renew its presence lease (docs/healing.md).
//
// The control plane replaces the members of instance groups that run on a
// host whose presence lease expired. So that a member never runs twice, an
// agent that has not renewed its lease for nearly the lease TTL stops
// ("fences") its group members itself, before the control plane can
// consider them lost, and starts none until a heartbeat succeeds again.
// Instances outside groups are left running: nothing replaces them.
//
// The deadline counts from when the last successful heartbeat was sent
// (Beat): the server renewed the lease after that, so the lease cannot
// expire before sent + TTL. After a restart it counts from the first
// Beat, which the agent calls before anything waits on the API.
//
// Fencing needs no API: it finds the members among the instances the
// agent knows and, for an agent that started while the API was
// unreachable (it knows none), in the group member Record kept in the
// data directory.
package fence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// ErrFenced holds back starts of group members while the agent is fenced.
var ErrFenced = errors.New("the agent cannot renew its presence lease: group members stay stopped (fenced) until it can")

// IsGroupMember reports whether an instance belongs to an instance group,
// which replaces it when its host is lost.
func IsGroupMember(inst *api.Instance) bool {
	return inst.Metadata.Labels[api.LabelGroup] != ""
}

// Instances lists the instances assigned to the host; fencing reads them
// and never changes them.
type Instances interface {
	All() []*api.Instance
}

// Config configures a Fence.
type Config struct {
	// LeaseTTL is the presence lease the agent asks for.
	LeaseTTL  time.Duration
	Drivers   *driver.Registry
	Instances Instances
	// Record holds the group members the host runs, for an agent that
	// knows no instances yet.
	Record *Record
	Logger *slog.Logger
}

// Fence tracks heartbeats and stops the group members when they fail for
// too long. Build it with New and run it with Run.
type Fence struct {
	cfg Config

	mu       sync.Mutex
	lastSent time.Time // when the last successful heartbeat was sent
	active   bool      // fenced now
	// stopped holds the uids fencing stopped and that were not started
	// since; the value says whether their Fenced event is still due.
	stopped map[string]bool
}

// New returns a Fence; it stops nothing until Run.
func New(cfg Config) *Fence {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Fence{cfg: cfg, stopped: map[string]bool{}}
}

// Deadline is how long after the last successful heartbeat the agent
// fences: the lease TTL less a margin of a quarter of it (at least one
// heartbeat interval of headroom with the defaults: 4.5 s of 6 s).
func (f *Fence) Deadline() time.Duration {
	return f.cfg.LeaseTTL - f.cfg.LeaseTTL/4
}

// Beat records a successful heartbeat sent at sent. It reports whether
// the agent was fenced until now: the caller then has what fencing
// stopped started again (Stopped).
func (f *Fence) Beat(sent time.Time) (wasActive bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sent.After(f.lastSent) {
		f.lastSent = sent
	}
	wasActive, f.active = f.active, false
	return wasActive
}

// since returns how long ago the last successful heartbeat was sent.
func (f *Fence) since(now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return now.Sub(f.lastSent)
}

// activate marks the agent fenced; it reports whether it was not yet.
func (f *Fence) activate() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.active
	f.active = true
	return !was
}

// Active reports whether the agent is fenced now.
func (f *Fence) Active() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *Fence) markStopped(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped[uid] = true
}

// WasFenced reports whether fencing stopped uid and it was not started
// since: the reconciler starts it again without counting a crash.
func (f *Fence) WasFenced(uid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.stopped[uid]
	return ok
}

// Announce reports whether the Fenced event of uid is due, once per
// fencing.
func (f *Fence) Announce(uid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	due := f.stopped[uid]
	if due {
		f.stopped[uid] = false
	}
	return due
}

// Forget drops uid after it was started (or removed).
func (f *Fence) Forget(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.stopped, uid)
}

// Stopped returns the uids fencing stopped and that were not started
// since.
func (f *Fence) Stopped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.stopped))
	for uid := range f.stopped {
		out = append(out, uid)
	}
	return out
}

// AllowStart refuses to start a group member while fenced.
func (f *Fence) AllowStart(inst *api.Instance) error {
	if IsGroupMember(inst) && f.Active() {
		return fmt.Errorf("start %s/%s: %w", inst.Metadata.Project, inst.Metadata.Name, ErrFenced)
	}
	return nil
}

// Run fences the host's group members when the heartbeat has failed for
// longer than Deadline, and keeps them stopped while it does, until ctx
// ends.
func (f *Fence) Run(ctx context.Context) {
	t := time.NewTicker(max(f.cfg.LeaseTTL/12, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		since := f.since(time.Now())
		if since < f.Deadline() {
			continue
		}
		if f.activate() {
			f.cfg.Logger.Warn("presence lease about to expire: stopping instance group members (fencing)",
				"since_last_heartbeat", since.Round(time.Millisecond), "lease_ttl", f.cfg.LeaseTTL)
		}
		f.stopMembers(ctx)
	}
}

// stopMembers stops (kills) every running group member of the host: those
// the agent knows and those in the group member record, which an agent
// that has not listed its instances yet knows only from there.
func (f *Fence) stopMembers(ctx context.Context) {
	type target struct{ uid, driver string }
	seen := map[target]bool{}
	var targets []Member
	add := func(m Member) {
		if t := (target{m.UID, m.Driver}); !seen[t] {
			seen[t] = true
			targets = append(targets, m)
		}
	}
	for _, inst := range f.cfg.Instances.All() {
		if IsGroupMember(inst) {
			add(memberOf(inst, inst.Status.Driver))
		}
	}
	for _, m := range f.cfg.Record.List() {
		add(m)
	}
	for _, m := range targets {
		d := f.cfg.Drivers.Get(m.Driver)
		if d == nil {
			continue
		}
		st, err := d.Inspect(ctx, m.UID)
		if err != nil || st.State != driver.StateRunning {
			continue
		}
		f.markStopped(m.UID)
		if err := d.Stop(ctx, m.UID, 0); err != nil {
			f.cfg.Logger.Error("fencing: stop group member", "instance", m.Instance, "uid", m.UID, "err", err)
			continue
		}
		f.cfg.Logger.Warn("fenced group member: stopped it because the presence lease is expiring", "instance", m.Instance, "uid", m.UID)
	}
}
