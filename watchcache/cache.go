// Package watchcache serves the API's watch streams and full lists from
// memory, over a store.Interface.
//
// Watch fan-out: every watch of a kind shares one store watch of that
// kind across all projects, started on first use. Each event is decoded
// once (by the store), encoded once, kept in a ring of recent events and
// offered to every subscriber, which filters it and queues the wire line.
//
//	store.Watch(kind, all projects)
//	   │
//	   ▼
//	sharedWatch.run ──▶ ring (last watchRingSize events)
//	   │
//	   ├─▶ subscriber.offer ─▶ queue ─▶ Cache.Watch ─▶ HTTP stream
//	   └─▶ subscriber.offer ─▶ ...
//
// A watch from a resourceVersion the ring still covers is served from
// memory; an older one falls back to a store watch of its own. A
// subscriber whose queue is full is ended with an ERROR Gone event, so a
// slow client never blocks the others.
//
// List cache: when the store can list in snapshots (store.Snapshots), full
// lists keep the objects they returned, encoded, and the shared watches
// keep them current, so that a list reads and encodes only what changed.
//
// Mirrors: when the store's watches also report progress (store.Progress),
// the first full list of a kind makes a mirror of the whole kind, kept by
// its shared watch; later full lists are answered from it without reading
// objects from the store, once it has reached the store's current
// revision (see mirror). Until a mirror is ready, or when it cannot catch
// up in time, lists read the store as before.
//
// The package answers with what it streams or lists; authenticating the
// caller, deciding what it may see (Query.Match) and decoding its request
// stay with the API server.
package watchcache

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Config configures a Cache.
type Config struct {
	// Store holds every object.
	Store store.Interface
	// Logger receives errors of store watches; default slog.Default().
	Logger *slog.Logger
	// Prepare readies an object for a response (kind filled, secrets
	// removed) before it is encoded; it may modify the object it is given.
	Prepare func(api.Object) api.Object
	// ErrorOf maps a store error to the API error a stream ends with.
	ErrorOf func(error) *api.Error
}

// Cache serves watch streams from one shared store watch per kind and,
// when the store has snapshots, full lists from memory.
type Cache struct {
	st      store.Interface
	log     *slog.Logger
	life    context.Context
	prepare func(api.Object) api.Object
	errorOf func(error) *api.Error
	metrics *metrics
	// progress, when the store has it, lets lists be answered from mirrors.
	progress store.Progress

	mu     sync.Mutex
	shared map[*api.Kind]*sharedWatch
	// seeding holds the kinds whose mirror is being made.
	seeding map[*api.Kind]bool
	// lists, when set, is given every object the shared watches see, so
	// that a list after changes finds them encoded already.
	lists *listCache
}

// New returns a Cache whose shared watches and streams end when life
// does. It starts nothing: shared watches start with their first stream.
func New(life context.Context, cfg Config) *Cache {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cache{st: cfg.Store, log: cfg.Logger, life: life, prepare: cfg.Prepare, errorOf: cfg.ErrorOf,
		metrics: newMetrics(), shared: map[*api.Kind]*sharedWatch{}, seeding: map[*api.Kind]bool{}}
	if snap, ok := cfg.Store.(store.Snapshots); ok {
		c.lists = newListCache(snap, c.prepare)
		c.progress, _ = cfg.Store.(store.Progress)
	}
	return c
}

// Collectors returns the cache's Prometheus collectors, for the server
// to register.
func (c *Cache) Collectors() []prometheus.Collector { return c.metrics.collectors() }

// subscribe attaches sub to the shared watch of k, starting it from
// sub.from if it is not running. It returns false if the shared watch
// cannot serve sub (its ring starts after sub.from); the caller then
// watches the store directly.
func (c *Cache) subscribe(k *api.Kind, sub *subscriber) bool {
	c.mu.Lock()
	w := c.sharedLocked(k)
	c.mu.Unlock()
	return w.subscribe(sub)
}

// sharedLocked returns the shared watch of kind k, making it (not
// running) if there is none. Call it with c.mu held.
func (c *Cache) sharedLocked(k *api.Kind) *sharedWatch {
	w := c.shared[k]
	if w == nil {
		w = &sharedWatch{cache: c, kind: k, subs: map[*subscriber]struct{}{},
			byHost: map[string]map[*subscriber]struct{}{}, lastHost: map[string]string{}}
		c.shared[k] = w
	}
	return w
}

// unsubscribe detaches sub from the shared watch of k, if attached.
func (c *Cache) unsubscribe(k *api.Kind, sub *subscriber) {
	c.mu.Lock()
	w := c.shared[k]
	c.mu.Unlock()
	if w != nil {
		w.unsubscribe(sub)
	}
}
