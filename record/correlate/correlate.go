// Package correlate bounds the events recorded about one object, as
// Kubernetes' event correlator does: repeats of an event are counted
// instead of recorded one by one, and each object has a budget of events.
// It has no dependencies beyond the API types, so that the agent (which
// posts events over HTTP) and the control plane (package record) can
// share it.
package correlate

import (
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Defaults of a Correlator (after Kubernetes' event correlator: repeats
// within ten minutes are aggregated, a burst of 25 events per object).
const (
	// DefaultWindow is how long an event suppresses its repeats.
	DefaultWindow = 10 * time.Minute
	// DefaultBurst is how many events one object may have in a row.
	DefaultBurst = 25
	// DefaultRefill is how often an object regains one event once its
	// burst is spent.
	DefaultRefill = time.Minute
)

// maxTracked bounds the repeats and objects a Correlator remembers; past
// it, entries that no longer hold anything back are dropped.
const maxTracked = 4096

// Correlator bounds the events recorded about one object, so that a
// failure that repeats without end cannot flood the store:
//
//   - An event with the same object, type, reason and message as one
//     recorded less than Window ago is counted, not recorded. The next one
//     recorded after the window carries the count (api.Event.Count).
//   - Each object has a budget of Burst events, refilled by one every
//     Refill; an event beyond it is dropped. This holds even for messages
//     that differ every time.
//
// A Correlator is safe for concurrent use. The zero value is not usable;
// call New.
type Correlator struct {
	window, refill time.Duration
	burst          int
	now            func() time.Time

	mu      sync.Mutex
	similar map[similarKey]*similarEvents
	budgets map[string]*budget
	swept   time.Time
	// sweepAbove is the number of entries past which the next event
	// sweeps before a window has passed: maxTracked, or twice what the
	// last sweep kept, so that entries still holding events back are not
	// walked again on every event (which made each event cost the whole
	// map once thousands of objects had recent events).
	sweepAbove int
	sweeps     int // full sweeps made, for tests
}

// similarKey identifies events that are repeats of one another.
type similarKey struct {
	object, typ, reason, message string
}

// similarEvents is what a Correlator knows of one kind of event.
type similarEvents struct {
	recorded time.Time // when it was last recorded
	seen     time.Time // when it last happened
	repeats  int32     // counted, not recorded, since recorded
}

// budget is an object's token bucket.
type budget struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// New returns a Correlator with the given window, burst and
// refill period; zero values take the defaults.
func New(window time.Duration, burst int, refill time.Duration) *Correlator {
	if window <= 0 {
		window = DefaultWindow
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	if refill <= 0 {
		refill = DefaultRefill
	}
	return &Correlator{
		window:  window,
		burst:   burst,
		refill:  refill,
		now:     time.Now,
		similar: map[similarKey]*similarEvents{},
		budgets: map[string]*budget{},
	}
}

// Correlate decides whether ev should be recorded. When it should, it
// sets ev.Count to the occurrences since the last recorded repeat of ev
// (ev included) and returns true; otherwise ev is counted or dropped and
// it returns false.
func (c *Correlator) Correlate(ev *api.Event) bool {
	now := c.now()
	obj := objectKey(ev.Object)
	key := similarKey{object: obj, typ: ev.Type, reason: ev.Reason, message: ev.Message}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	s := c.similar[key]
	if s != nil {
		s.seen = now
	}
	if s != nil && now.Sub(s.recorded) < c.window {
		s.repeats++
		return false
	}
	if !c.take(obj, now) {
		if s != nil {
			s.repeats++
		}
		return false
	}
	ev.Count = 1
	if s != nil {
		ev.Count += s.repeats
	}
	c.similar[key] = &similarEvents{recorded: now, seen: now}
	return true
}

// take spends one event of obj's budget, if there is one left.
func (c *Correlator) take(obj string, now time.Time) bool {
	b := c.budgets[obj]
	if b == nil {
		b = &budget{tokens: float64(c.burst), at: now}
		c.budgets[obj] = b
	}
	c.fill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// fill adds the tokens earned since b was last computed.
func (c *Correlator) fill(b *budget, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(c.burst), b.tokens+float64(d)/float64(c.refill))
		b.at = now
	}
}

// sweep forgets, once a window or when too much is remembered (maxTracked
// entries, or twice what the last sweep kept), the events that did not
// happen for a window (with their repeats not yet reported) and the
// objects whose budget is full again.
func (c *Correlator) sweep(now time.Time) {
	if now.Sub(c.swept) < c.window && len(c.similar)+len(c.budgets) < max(c.sweepAbove, maxTracked) {
		return
	}
	c.swept = now
	c.sweeps++
	defer func() { c.sweepAbove = 2 * (len(c.similar) + len(c.budgets)) }()
	for k, s := range c.similar {
		if now.Sub(s.seen) >= c.window {
			delete(c.similar, k)
		}
	}
	for k, b := range c.budgets {
		c.fill(b, now)
		if b.tokens >= float64(c.burst) {
			delete(c.budgets, k)
		}
	}
}

// objectKey identifies the object an event is about.
func objectKey(o api.ObjectRef) string {
	if o.UID != "" {
		return o.UID
	}
	return o.Kind + "/" + o.Project + "/" + o.Name
}
