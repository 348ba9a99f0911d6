package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// Fencing (docs/healing.md): the control plane replaces the members of
// instance groups that run on a host whose presence lease expired. So
// that a member never runs twice, an agent that has not renewed its lease
// for nearly the lease TTL stops ("fences") its group members itself,
// before the control plane can consider them lost, and starts none until
// a heartbeat succeeds again. Instances outside groups are left running:
// nothing replaces them.
//
// The deadline counts from when the last successful heartbeat was sent:
// the server renewed the lease after that, so the lease cannot expire
// before sent + TTL. After a restart it counts from the start of Run, and
// the fence loop starts before anything waits on the API.
//
// Fencing needs no API: it finds the members in the instance cache and,
// for an agent that started while the API was unreachable (an empty
// cache), in the group member record kept in the data directory
// (members.go).

// errFenced holds back starts of group members while the agent is fenced.
var errFenced = errors.New("the agent cannot renew its presence lease: group members stay stopped (fenced) until it can")

// fencer tracks heartbeats and the instances fencing stopped.
type fencer struct {
	mu       sync.Mutex
	lastSent time.Time // when the last successful heartbeat was sent
	active   bool      // fenced now
	// stopped holds the uids fencing stopped and that were not started
	// since; the value says whether their Fenced event is still due.
	stopped map[string]bool
}

// beat records a successful heartbeat sent at sent. It reports whether
// the agent was fenced until now.
func (f *fencer) beat(sent time.Time) (wasActive bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sent.After(f.lastSent) {
		f.lastSent = sent
	}
	wasActive, f.active = f.active, false
	return wasActive
}

// since returns how long ago the last successful heartbeat was sent.
func (f *fencer) since(now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return now.Sub(f.lastSent)
}

// activate marks the agent fenced; it reports whether it was not yet.
func (f *fencer) activate() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.active
	f.active = true
	return !was
}

func (f *fencer) isActive() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

func (f *fencer) markStopped(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped == nil {
		f.stopped = map[string]bool{}
	}
	f.stopped[uid] = true
}

// wasFenced reports whether fencing stopped uid and it was not started
// since: the reconciler starts it again without counting a crash.
func (f *fencer) wasFenced(uid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.stopped[uid]
	return ok
}

// announce reports whether the Fenced event of uid is due, once per
// fencing.
func (f *fencer) announce(uid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	due := f.stopped[uid]
	if due {
		f.stopped[uid] = false
	}
	return due
}

// forget drops uid after it was started (or removed).
func (f *fencer) forget(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.stopped, uid)
}

// fencedUIDs returns the uids fencing stopped.
func (f *fencer) fencedUIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.stopped))
	for uid := range f.stopped {
		out = append(out, uid)
	}
	return out
}

// allowStart refuses to start a group member while fenced.
func (f *fencer) allowStart(inst *api.Instance) error {
	if isGroupMember(inst) && f.isActive() {
		return fmt.Errorf("start %s: %w", instanceKey(inst), errFenced)
	}
	return nil
}

// isGroupMember reports whether an instance belongs to an instance group,
// which replaces it when its host is lost.
func isGroupMember(inst *api.Instance) bool {
	return inst.Metadata.Labels[api.LabelGroup] != ""
}

// fenceDeadline is how long after the last successful heartbeat the agent
// fences: the lease TTL less a margin of a quarter of it (at least one
// heartbeat interval of headroom with the defaults: 4.5 s of 6 s).
func (a *Agent) fenceDeadline() time.Duration {
	return a.cfg.LeaseTTL - a.cfg.LeaseTTL/4
}

// fenceLoop fences the host's group members when the heartbeat has failed
// for longer than fenceDeadline, and keeps them stopped while it does.
func (a *Agent) fenceLoop(ctx context.Context) {
	t := time.NewTicker(max(a.cfg.LeaseTTL/12, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		since := a.fence.since(time.Now())
		if since < a.fenceDeadline() {
			continue
		}
		if a.fence.activate() {
			a.log.Warn("presence lease about to expire: stopping instance group members (fencing)",
				"since_last_heartbeat", since.Round(time.Millisecond), "lease_ttl", a.cfg.LeaseTTL)
		}
		a.fenceMembers(ctx)
	}
}

// fenceMembers stops (kills) every running group member of the host: those
// in the cache and those in the group member record, which an agent that
// has not listed its instances yet knows only from there.
func (a *Agent) fenceMembers(ctx context.Context) {
	type target struct{ uid, driver string }
	seen := map[target]bool{}
	var targets []groupMember
	add := func(m groupMember) {
		if t := (target{m.UID, m.Driver}); !seen[t] {
			seen[t] = true
			targets = append(targets, m)
		}
	}
	for _, inst := range a.cache.all() {
		if isGroupMember(inst) {
			add(groupMember{UID: inst.Metadata.UID, Driver: inst.Status.Driver, Instance: instanceKey(inst)})
		}
	}
	for _, m := range a.members.list() {
		add(m)
	}
	for _, m := range targets {
		d := a.cfg.Drivers.Get(m.Driver)
		if d == nil {
			continue
		}
		st, err := d.Inspect(ctx, m.UID)
		if err != nil || st.State != driver.StateRunning {
			continue
		}
		a.fence.markStopped(m.UID)
		if err := d.Stop(ctx, m.UID, 0); err != nil {
			a.log.Error("fencing: stop group member", "instance", m.Instance, "uid", m.UID, "err", err)
			continue
		}
		a.log.Warn("fenced group member: stopped it because the presence lease is expiring", "instance", m.Instance, "uid", m.UID)
	}
}

// unfence is called after a successful heartbeat that ends fencing.
func (a *Agent) unfence(ctx context.Context) {
	a.log.Info("heartbeat works again: fencing ends")
	a.restartFenced(ctx)
}

// restartFenced has the instances fencing stopped reconciled again
// (started if they are still assigned here and the control plane did not
// replace them), each with an event Fenced. Before the first successful
// list the cache knows none of those found through the group member
// record: they are kept for that list, which queues every assigned
// instance and calls restartFenced again if fencing has ended.
func (a *Agent) restartFenced(ctx context.Context) {
	for _, uid := range a.fence.fencedUIDs() {
		inst, ok := a.cache.byUIDCopy(uid)
		if !ok {
			if a.synced.Load() {
				a.fence.forget(uid)
			}
			continue
		}
		if a.fence.announce(uid) {
			a.event(ctx, inst, api.EventWarning, "Fenced", "the instance was stopped while its host could not renew its presence lease")
		}
		a.queue.Add(instanceKey(inst))
	}
}
