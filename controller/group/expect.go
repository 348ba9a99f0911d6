package group

import (
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/controller/cache"
)

// expectTimeout bounds how long a group waits for the cache to show one
// of its writes; past it the controller plans from what it has.
const expectTimeout = 10 * time.Second

// expectation is a write of the controller the instance cache must show
// before the group's next plan: otherwise a stale cache would make the
// controller create or delete a member twice.
type expectation struct {
	// instance is the cache key of the instance written.
	instance string
	// rev, for a create or update, is the store revision of the write:
	// the cache shows it once its revision reaches rev.
	rev int64
	// uid, for a delete, is the instance that must be gone from the cache.
	uid      string
	deadline time.Time
}

// expectations are the pending writes of each group, by group key.
type expectations struct {
	mu sync.Mutex
	m  map[string][]expectation
}

func newExpectations() *expectations {
	return &expectations{m: map[string][]expectation{}}
}

// wrote records a create or update of an instance at store revision rev.
func (e *expectations) wrote(group, instance string, rev int64, now time.Time) {
	e.add(group, expectation{instance: instance, rev: rev, deadline: now.Add(expectTimeout)})
}

// deleted records the removal of the instance uid.
func (e *expectations) deleted(group, instance, uid string, now time.Time) {
	e.add(group, expectation{instance: instance, uid: uid, deadline: now.Add(expectTimeout)})
}

func (e *expectations) add(group string, x expectation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[group] = append(e.m[group], x)
}

// satisfied drops the expectations of group the cache meets (or that
// timed out) and reports whether none is left. indexed reports whether
// the controller's member index (which the plan reads, filled by an
// event handler after the informer applied the event) holds an
// instance: a write is seen only once both show it, or the plan could
// miss a member the informer already has and make one too many.
func (e *expectations) satisfied(group string, instances *cache.Informer, indexed func(instance string) bool, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	xs := e.m[group]
	if len(xs) == 0 {
		return true
	}
	rev := instances.Revision()
	kept := xs[:0]
	for _, x := range xs {
		met := now.After(x.deadline)
		if x.uid != "" {
			obj, ok := instances.Get(x.instance)
			met = met || !ok || obj.Meta().UID != x.uid
		} else if rev >= x.rev {
			_, present := instances.Get(x.instance)
			met = met || !present || indexed(x.instance)
		}
		if !met {
			kept = append(kept, x)
		}
	}
	if len(kept) == 0 {
		delete(e.m, group)
		return true
	}
	e.m[group] = kept
	return false
}

// forget drops every expectation of group.
func (e *expectations) forget(group string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, group)
}
