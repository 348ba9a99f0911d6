// Package cache keeps an in-memory copy of one kind of object, fed by a
// list and a watch of the store, and tells handlers which keys changed.
//
// An Informer lists the kind, then watches from the revision of the list,
// resuming from the last revision it saw when a watch ends and listing
// again when the revision was compacted. Every change (and, as a
// backstop, every key once per resync period) is reported to the handlers
// by key only: reconcilers read the current object from the cache and
// converge, whatever event woke them.
//
// Objects handed out by Get and List are shared: callers must not modify
// them (use Copy first).
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// DefaultResync is how often every key is reported again as a backstop.
const DefaultResync = 30 * time.Second

// retryDelay is the pause before listing or watching again after an error.
const retryDelay = 200 * time.Millisecond

// Handler is told the key of an object that changed (or was deleted, or
// is being resynced). It runs on the informer's goroutine and must be
// quick: typically it adds the key to a work queue.
type Handler func(key string)

// Key returns the cache key of obj: "project/name" for project-scoped
// kinds, "name" for cluster-scoped ones.
func Key(obj api.Object) string {
	m := obj.Meta()
	if obj.GetKind().Namespaced {
		return m.Project + "/" + m.Name
	}
	return m.Name
}

// SplitKey returns the project (empty for cluster-scoped kinds) and name
// of a key.
func SplitKey(key string) (project, name string) {
	if p, n, ok := strings.Cut(key, "/"); ok {
		return p, n
	}
	return "", key
}

// Copy returns a deep copy of obj that the caller may modify.
func Copy[T api.Object](obj T) (T, error) {
	var zero T
	b, err := json.Marshal(obj)
	if err != nil {
		return zero, fmt.Errorf("copy %s: %w", obj.GetKind(), err)
	}
	out, ok := obj.GetKind().New().(T)
	if !ok {
		return zero, fmt.Errorf("copy %s: kind makes %T", obj.GetKind(), obj.GetKind().New())
	}
	if err := json.Unmarshal(b, out); err != nil {
		return zero, fmt.Errorf("copy %s: %w", obj.GetKind(), err)
	}
	return out, nil
}

// Informer caches the objects of one kind.
type Informer struct {
	st     store.Interface
	kind   *api.Kind
	resync time.Duration
	log    *slog.Logger

	mu       sync.RWMutex
	objs     map[string]api.Object
	rev      int64
	handlers []Handler
	synced   chan struct{}
	once     sync.Once
}

// New returns an informer of kind (all projects) over st. resync <= 0
// means DefaultResync.
func New(st store.Interface, kind *api.Kind, resync time.Duration, log *slog.Logger) *Informer {
	if resync <= 0 {
		resync = DefaultResync
	}
	if log == nil {
		log = slog.Default()
	}
	return &Informer{
		st:     st,
		kind:   kind,
		resync: resync,
		log:    log.With("informer", kind.Plural),
		objs:   map[string]api.Object{},
		synced: make(chan struct{}),
	}
}

// AddHandler registers h. Handlers added after Run started miss earlier
// changes but see the next resync.
func (in *Informer) AddHandler(h Handler) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.handlers = append(in.handlers, h)
}

// Synced is closed once the first list is in the cache.
func (in *Informer) Synced() <-chan struct{} { return in.synced }

// WaitSynced waits for the first list or for ctx to end.
func (in *Informer) WaitSynced(ctx context.Context) error {
	select {
	case <-in.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s cache: %w", in.kind.Plural, ctx.Err())
	}
}

// Get returns the cached object of key; the caller must not modify it.
func (in *Informer) Get(key string) (api.Object, bool) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	o, ok := in.objs[key]
	return o, ok
}

// List returns all cached objects in no particular order; the caller must
// not modify them.
func (in *Informer) List() []api.Object {
	in.mu.RLock()
	defer in.mu.RUnlock()
	out := make([]api.Object, 0, len(in.objs))
	for _, o := range in.objs {
		out = append(out, o)
	}
	return out
}

// Revision returns the store revision the cache reflects.
func (in *Informer) Revision() int64 {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.rev
}

// Run lists and watches until ctx ends.
func (in *Informer) Run(ctx context.Context) error {
	ticker := time.NewTicker(in.resync)
	defer ticker.Stop()
	needList := true
	for ctx.Err() == nil {
		if needList {
			if err := in.relist(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				in.log.Warn("list failed", "err", err)
				if !sleep(ctx, retryDelay) {
					break
				}
				continue
			}
			needList = false
		}
		wctx, cancel := context.WithCancel(ctx)
		ch, err := in.st.Watch(wctx, in.kind, "", in.Revision())
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				break
			}
			in.log.Warn("watch failed", "err", err)
			needList = errors.Is(err, store.ErrCompacted)
			if !sleep(ctx, retryDelay) {
				break
			}
			continue
		}
		needList = in.consume(ctx, ch, ticker.C)
		cancel() // ends the store's watch goroutine, whatever stopped us
	}
	return nil
}

// consume applies watch events until the channel closes. It reports
// whether the cache must be listed again.
func (in *Informer) consume(ctx context.Context, ch <-chan store.Event, tick <-chan time.Time) (relist bool) {
	for {
		select {
		case <-tick:
			in.resyncAll()
		case ev, ok := <-ch:
			if !ok {
				if ctx.Err() == nil {
					sleep(ctx, retryDelay)
				}
				return false
			}
			if ev.Err != nil {
				if errors.Is(ev.Err, store.ErrCompacted) {
					in.log.Info("watch compacted, listing again")
					return true
				}
				if ev.Revision != 0 {
					// One object could not be decoded; skip it.
					in.log.Error("bad object in watch", "revision", ev.Revision, "err", ev.Err)
					in.mu.Lock()
					in.rev = max(in.rev, ev.Revision)
					in.mu.Unlock()
					continue
				}
				in.log.Warn("watch ended", "err", ev.Err)
				sleep(ctx, retryDelay)
				return false
			}
			in.apply(ev)
		}
	}
}

// apply puts one watch event into the cache and notifies.
func (in *Informer) apply(ev store.Event) {
	if ev.Object == nil {
		return
	}
	key := Key(ev.Object)
	in.mu.Lock()
	if ev.Revision > in.rev {
		in.rev = ev.Revision
	}
	old, had := in.objs[key]
	switch ev.Type {
	case api.Deleted:
		if !had {
			in.mu.Unlock()
			return
		}
		delete(in.objs, key)
	case api.Added, api.Modified:
		if had && old.Meta().ResourceVersion == ev.Object.Meta().ResourceVersion {
			in.mu.Unlock()
			return // a replay of what the cache holds
		}
		in.objs[key] = ev.Object
	default:
		in.mu.Unlock()
		return
	}
	hs := in.handlers
	in.mu.Unlock()
	notify(hs, key)
}

// relist replaces the cache with a fresh list and notifies every key that
// changed, appeared or disappeared.
func (in *Informer) relist(ctx context.Context) error {
	items, meta, err := in.st.List(ctx, in.kind, "", store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list %s: %w", in.kind.Plural, err)
	}
	var rev int64
	if meta.ResourceVersion != "" {
		if _, err := fmt.Sscan(meta.ResourceVersion, &rev); err != nil {
			return fmt.Errorf("list %s: bad resourceVersion %q: %w", in.kind.Plural, meta.ResourceVersion, err)
		}
	}
	fresh := make(map[string]api.Object, len(items))
	for _, o := range items {
		fresh[Key(o)] = o
	}
	in.mu.Lock()
	var changed []string
	for k, o := range fresh {
		if old, ok := in.objs[k]; !ok || old.Meta().ResourceVersion != o.Meta().ResourceVersion {
			changed = append(changed, k)
		}
	}
	for k := range in.objs {
		if _, ok := fresh[k]; !ok {
			changed = append(changed, k)
		}
	}
	in.objs = fresh
	in.rev = rev
	hs := in.handlers
	in.mu.Unlock()
	for _, k := range changed {
		notify(hs, k)
	}
	in.once.Do(func() { close(in.synced) })
	return nil
}

// resyncAll reports every cached key.
func (in *Informer) resyncAll() {
	in.mu.RLock()
	keys := make([]string, 0, len(in.objs))
	for k := range in.objs {
		keys = append(keys, k)
	}
	hs := in.handlers
	in.mu.RUnlock()
	for _, k := range keys {
		notify(hs, k)
	}
}

func notify(hs []Handler, key string) {
	for _, h := range hs {
		h(key)
	}
}

// sleep waits for d or ctx; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
