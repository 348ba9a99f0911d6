package ec2

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/store"
)

// memoryKinds are the kinds answers refer to (viewKinds but
// instances' own), kept in memory when the handler has a life context.
var memoryKinds = []*api.Kind{api.NetworkKind, api.SecurityGroupKind, api.ImageKind, api.HostKind, api.FloatingIPKind, api.VPCKind}

// memory keeps the kinds instances' answers refer to in memory, fed by a
// list and a watch of the store each (controller/cache informers), so
// that mapping an instance's network, groups, image, host and floating
// IP to EC2 ids reads nothing from etcd. What it shows trails the store
// by the watch's delay (milliseconds): the answers' references may lag
// a change that much, as AWS's own eventual consistency allows, and a
// lookup that misses in memory (a subnet made a moment ago on another
// server) reads the store before answering NotFound (view.reload). A
// kind written through this server is read from the store until memory
// shows the write (changed), so a caller reads its own writes.
type memory struct {
	st   store.Interface
	life context.Context

	start sync.Once
	kinds map[*api.Kind]*cache.Informer
	// events feeds recs, the keys of terminated instances' records: a
	// full DescribeInstances finds them without scanning the project's
	// events.
	events *cache.Informer
	recMu  sync.Mutex
	recs   map[string]bool
	// local are records written here that the informer may not show yet.
	local map[string]localRecord

	mu      sync.Mutex
	pending map[*api.Kind]map[string]staleEntry // writes made here, by key
}

func newMemory(st store.Interface, life context.Context) *memory {
	return &memory{st: st, life: life, pending: map[*api.Kind]map[string]staleEntry{}}
}

// changed records that obj was written (deleted, when gone) through this
// server: its kind is read from the store until memory shows the write,
// so that a caller reads what it wrote.
func (m *memory) changed(obj api.Object, gone bool) {
	k := obj.GetKind()
	if !slices.Contains(memoryKinds, k) {
		return
	}
	e, ok := newStaleEntry(obj, gone)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[k] == nil {
		m.pending[k] = map[string]staleEntry{}
	}
	m.pending[k][cache.Key(obj)] = e
}

// current reports whether in shows every write made here of its kind,
// forgetting those it shows.
func (m *memory) current(k *api.Kind, in *cache.Informer) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, e := range m.pending[k] {
		o, ok := in.Get(key)
		shown := !ok
		if e.rev != 0 && ok {
			rev, _ := strconv.ParseInt(o.Meta().ResourceVersion, 10, 64)
			shown = rev >= e.rev
		}
		if !shown && time.Now().Before(e.expires) {
			return false
		}
		delete(m.pending[k], key)
	}
	return true
}

// run starts the informers on first use.
func (m *memory) run() {
	m.start.Do(func() {
		m.kinds = map[*api.Kind]*cache.Informer{}
		for _, k := range memoryKinds {
			in := cache.New(m.st, k, 0, nil)
			m.kinds[k] = in
			go in.Run(m.life)
		}
		m.recs, m.local = map[string]bool{}, map[string]localRecord{}
		m.events = cache.New(m.st, api.EventKind, 0, nil)
		m.events.AddHandler(func(key string) {
			o, ok := m.events.Get(key)
			m.recMu.Lock()
			defer m.recMu.Unlock()
			if ok && isTerminatedRecord(o) {
				m.recs[key] = true
			} else {
				delete(m.recs, key)
			}
		})
		go m.events.Run(m.life)
	})
}

// records returns the records of terminated instances of project and
// true, or false when memory has none to offer. They are shared: never
// modify them.
func (m *memory) records(project string) ([]*api.Event, bool) {
	if m.life == nil {
		return nil, false
	}
	m.run()
	select {
	case <-m.events.Synced():
	default:
		return nil, false
	}
	m.recMu.Lock()
	keys := make([]string, 0, len(m.recs))
	for key := range m.recs {
		if p, _ := cache.SplitKey(key); p == project {
			keys = append(keys, key)
		}
	}
	m.recMu.Unlock()
	var out []*api.Event
	for _, key := range keys {
		if o, ok := m.events.Get(key); ok && isTerminatedRecord(o) {
			out = append(out, o.(*api.Event))
		}
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	for key, r := range m.local {
		switch {
		case m.recs[key] || time.Now().After(r.expires):
			delete(m.local, key)
		case r.e.Metadata.Project == project:
			out = append(out, r.e)
		}
	}
	return out, true
}

// localRecord is a record written here.
type localRecord struct {
	e       *api.Event
	expires time.Time
}

// recorded keeps e, a record just written here, until the informer
// shows it.
func (m *memory) recorded(e *api.Event) {
	if m.life == nil {
		return
	}
	m.run()
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.local[cache.Key(e)] = localRecord{e: e, expires: time.Now().Add(staleFor)}
}

// list returns the objects of kind k in project ("" for all), sorted by
// project and name, and true; false when k is not kept or not listed
// yet. The objects are shared: never modify them.
func (m *memory) list(k *api.Kind, project string) ([]api.Object, bool) {
	if m.life == nil {
		return nil, false
	}
	m.run()
	in := m.kinds[k]
	if in == nil {
		return nil, false
	}
	select {
	case <-in.Synced():
	default:
		return nil, false
	}
	if !m.current(k, in) {
		return nil, false
	}
	all := in.List()
	out := all[:0]
	for _, o := range all {
		if project == "" || o.Meta().Project == project {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b api.Object) int {
		if c := strings.Compare(a.Meta().Project, b.Meta().Project); c != 0 {
			return c
		}
		return strings.Compare(a.Meta().Name, b.Meta().Name)
	})
	return out, true
}
