// Package record writes Events: short-lived objects that say what happened
// to another object ("placed on host-3", "Running", "HostNotReady").
//
// An event lives in the project of the object it is about. Events about
// cluster-scoped objects (hosts, flavors, users, projects) go to the
// project named SystemProject ("system"). Events expire after TTL (one
// hour) through the store's TTL.
//
// Recording never fails the caller and never blocks it for long: events
// are written in the background by a bounded number of goroutines, each
// writing what is waiting in one transaction (store.CreateBatch), errors
// are logged, and when too many events wait or are in flight further
// events are dropped (and logged) rather than slowing the controller down.
//
// Nor can one object flood the store: repeats of an event are counted
// rather than written each time, and each object has a budget of events
// (package record/correlate).
package record

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/record/correlate"
	"github.com/ouroboros-cloud/ouro/store"
)

// SystemProject holds the events about cluster-scoped objects.
const SystemProject = "system"

// TTL is how long an event is kept.
const TTL = time.Hour

// Limits of background writing.
const (
	// maxInFlight bounds the events waiting or being written; beyond it
	// events are dropped.
	maxInFlight = 256
	// writers bounds the transactions of events in flight at once.
	writers = 4
	// writeTimeout bounds one event write.
	writeTimeout = 10 * time.Second
)

// Sink records events about objects. The control plane writes them to the
// store with a Recorder; the agent posts them over HTTP with its own Sink.
type Sink interface {
	// Event records that something of type typ (api.EventNormal or
	// api.EventWarning) happened to obj for reason, with a message made by
	// fmt.Sprintf(messageFmt, args...).
	Event(ctx context.Context, obj api.Object, typ, reason, messageFmt string, args ...any)
}

// Recorder is a Sink that creates Event objects in the store.
type Recorder struct {
	st     store.Interface
	source string
	log    *slog.Logger
	now    func() time.Time
	corr   *correlate.Correlator

	wg sync.WaitGroup

	mu       sync.Mutex
	queued   []queued // waiting for a writer
	inFlight int      // queued or being written
	running  int      // writers
}

// queued is an event waiting to be written with the context it was
// recorded with.
type queued struct {
	ctx context.Context
	ev  *api.Event
}

var _ Sink = (*Recorder)(nil)

// New returns a Recorder that writes to st on behalf of source (for
// example "scheduler").
func New(st store.Interface, source string) *Recorder {
	return &Recorder{
		st:     st,
		source: source,
		log:    slog.Default().With("component", "record", "source", source),
		now:    time.Now,
		corr:   correlate.New(0, 0, 0),
	}
}

// WithLogger sets the logger for write failures and returns r.
func (r *Recorder) WithLogger(log *slog.Logger) *Recorder {
	r.log = log.With("component", "record", "source", r.source)
	return r
}

// Event implements Sink. It returns at once; the event is written in the
// background, unless it is a repeat (counted, see correlate.Correlator)
// or beyond the object's budget.
func (r *Recorder) Event(ctx context.Context, obj api.Object, typ, reason, messageFmt string, args ...any) {
	ev := r.build(obj, typ, reason, fmt.Sprintf(messageFmt, args...))
	if !r.corr.Correlate(ev) {
		r.log.Debug("event not recorded: a repeat, or too many about the object", "reason", reason, "object", ev.Object.Name)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight >= maxInFlight {
		r.log.Warn("too many events in flight, dropping one", "reason", reason, "object", ev.Object.Name)
		return
	}
	r.inFlight++
	r.wg.Add(1)
	r.queued = append(r.queued, queued{ctx: context.WithoutCancel(ctx), ev: ev})
	if r.running < writers {
		r.running++
		go r.write()
	}
}

// write writes what is queued, a transaction at a time, until nothing is.
func (r *Recorder) write() {
	for {
		r.mu.Lock()
		n := min(len(r.queued), store.MaxBatch)
		if n == 0 {
			r.running--
			r.mu.Unlock()
			return
		}
		batch := make([]queued, n)
		copy(batch, r.queued)
		r.queued = append(r.queued[:0], r.queued[n:]...)
		r.mu.Unlock()

		objs := make([]api.Object, n)
		for i, q := range batch {
			objs[i] = q.ev
		}
		wctx, cancel := context.WithTimeout(batch[0].ctx, writeTimeout)
		errs := store.CreateBatch(wctx, r.st, objs, TTL)
		cancel()
		for i, err := range errs {
			if err != nil {
				ev := batch[i].ev
				r.log.Warn("recording event failed", "reason", ev.Reason, "object", ev.Object.Name, "err", err)
			}
		}
		r.mu.Lock()
		r.inFlight -= n
		r.mu.Unlock()
		r.wg.Add(-n)
	}
}

// Wait blocks until the events recorded so far are written (or failed).
func (r *Recorder) Wait() { r.wg.Wait() }

// build makes the Event object.
func (r *Recorder) build(obj api.Object, typ, reason, msg string) *api.Event {
	m := obj.Meta()
	project := m.Project
	if !obj.GetKind().Namespaced || project == "" {
		project = SystemProject
	}
	now := r.now().UTC()
	return &api.Event{
		Kind: api.EventKind.Name,
		Metadata: api.ObjectMeta{
			Name:    Name(now),
			Project: project,
		},
		Object: api.ObjectRef{
			Kind:    obj.GetKind().Name,
			Project: m.Project,
			Name:    m.Name,
			UID:     m.UID,
		},
		Type:    typ,
		Reason:  reason,
		Message: msg,
		Source:  r.source,
		Time:    now,
	}
}

// Name returns a unique event name that sorts by time: the Unix time in
// nanoseconds as 16 hex digits, a dash and 8 random hex digits.
func Name(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	ts := strconv.FormatInt(t.UnixNano(), 16)
	for len(ts) < 16 {
		ts = "0" + ts
	}
	return ts + "-" + hex.EncodeToString(b[:])
}
