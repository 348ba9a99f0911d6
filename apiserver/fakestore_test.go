package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// fakeStore is an in-memory store.Interface for unit tests: objects are
// kept as JSON, every write bumps one revision counter, and watchers get
// the change log.
type fakeStore struct {
	mu        sync.Mutex
	rev       int64
	objs      map[string]fakeObj // kind/project/name
	idem      map[string]fakeIdem
	log       []store.Event
	compacted int64
	watchers  map[*fakeWatcher]bool
	ttls      map[string]time.Duration
	alive     map[string]time.Duration
	claims    map[string]string   // claim → holder key
	claimsOf  map[string][]string // holder key → claims
}

type fakeObj struct {
	kind *api.Kind
	data []byte
}

type fakeIdem struct{ hash, key string }

type fakeWatcher struct {
	kind    *api.Kind
	project string
	ch      chan store.Event
}

func newFakeStore() *fakeStore {
	return &fakeStore{objs: map[string]fakeObj{}, idem: map[string]fakeIdem{}, watchers: map[*fakeWatcher]bool{},
		ttls: map[string]time.Duration{}, alive: map[string]time.Duration{},
		claims: map[string]string{}, claimsOf: map[string][]string{}}
}

func fkey(k *api.Kind, project, name string) string {
	if !k.Namespaced {
		project = ""
	}
	return k.Plural + "/" + project + "/" + name
}

// revision returns the number of writes so far.
func (f *fakeStore) revision() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

func (f *fakeStore) decode(o fakeObj) api.Object {
	out := o.kind.New()
	if err := json.Unmarshal(o.data, out); err != nil {
		panic(err)
	}
	return out
}

// commit stores obj at a new revision and tells watchers; f.mu is held.
func (f *fakeStore) commit(typ api.EventType, key string, obj api.Object) {
	f.rev++
	obj.Meta().ResourceVersion = strconv.FormatInt(f.rev, 10)
	data, _ := json.Marshal(obj)
	if typ == api.Deleted {
		delete(f.objs, key)
	} else {
		f.objs[key] = fakeObj{kind: obj.GetKind(), data: data}
	}
	ev := store.Event{Type: typ, Object: f.decode(fakeObj{kind: obj.GetKind(), data: data}), Revision: f.rev}
	f.log = append(f.log, ev)
	for w := range f.watchers {
		if w.matches(ev.Object) {
			w.ch <- store.Event{Type: typ, Object: f.decode(fakeObj{kind: obj.GetKind(), data: data}), Revision: f.rev}
		}
	}
}

func (w *fakeWatcher) matches(o api.Object) bool {
	return o.GetKind() == w.kind && (w.project == "" || o.Meta().Project == w.project)
}

func (f *fakeStore) Create(_ context.Context, obj api.Object, opts store.CreateOptions) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := obj.Meta()
	k := obj.GetKind()
	key := fkey(k, m.Project, m.Name)
	ikey := ""
	if opts.IdempotencyKey != "" {
		ikey = k.Plural + "/" + m.Project + "/" + opts.IdempotencyKey
		if rec, ok := f.idem[ikey]; ok {
			if rec.hash != opts.RequestHash {
				return false, store.ErrIdempotencyMismatch
			}
			o, ok := f.objs[rec.key]
			if !ok {
				return false, store.ErrNotFound
			}
			data := o.data
			return true, json.Unmarshal(data, obj)
		}
	}
	if _, ok := f.objs[key]; ok {
		return false, store.ErrAlreadyExists
	}
	for _, c := range opts.Claims {
		if h, ok := f.claims[c]; ok {
			return false, &store.ClaimError{Claim: c, Holder: h}
		}
	}
	for _, p := range opts.FreeClaimPrefixes {
		for c, h := range f.claims {
			if strings.HasPrefix(c, p) {
				return false, &store.ClaimError{Claim: c, Holder: h}
			}
		}
	}
	for _, c := range opts.Claims {
		f.claims[c] = key
	}
	if len(opts.Claims) > 0 {
		f.claimsOf[key] = append([]string(nil), opts.Claims...)
	}
	b := make([]byte, 16)
	rand.Read(b)
	m.UID = hex.EncodeToString(b)
	m.CreationTimestamp = time.Now().UTC().Truncate(time.Second)
	m.Generation = 1
	if opts.TTL > 0 {
		f.ttls[key] = opts.TTL
	}
	f.commit(api.Added, key, obj)
	if ikey != "" {
		f.idem[ikey] = fakeIdem{hash: opts.RequestHash, key: key}
	}
	return false, nil
}

func (f *fakeStore) Get(_ context.Context, k *api.Kind, project, name string, out api.Object) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objs[fkey(k, project, name)]
	if !ok {
		return store.ErrNotFound
	}
	return json.Unmarshal(o.data, out)
}

func (f *fakeStore) Update(_ context.Context, obj api.Object) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := obj.Meta()
	key := fkey(obj.GetKind(), m.Project, m.Name)
	o, ok := f.objs[key]
	if !ok {
		return store.ErrNotFound
	}
	cur := f.decode(o)
	if cur.Meta().ResourceVersion != m.ResourceVersion {
		return store.ErrConflict
	}
	m.UID, m.CreationTimestamp = cur.Meta().UID, cur.Meta().CreationTimestamp
	f.commit(api.Modified, key, obj)
	return nil
}

func (f *fakeStore) UpdateBatch(ctx context.Context, objs []api.Object) []error {
	errs := make([]error, len(objs))
	for i, obj := range objs {
		errs[i] = f.Update(ctx, obj)
	}
	return errs
}

func (f *fakeStore) Delete(_ context.Context, k *api.Kind, project, name, rv string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fkey(k, project, name)
	o, ok := f.objs[key]
	if !ok {
		return store.ErrNotFound
	}
	cur := f.decode(o)
	if rv != "" && cur.Meta().ResourceVersion != rv {
		return store.ErrConflict
	}
	for _, c := range f.claimsOf[key] {
		delete(f.claims, c)
	}
	delete(f.claimsOf, key)
	f.commit(api.Deleted, key, cur)
	return nil
}

func (f *fakeStore) List(_ context.Context, k *api.Kind, project string, opts store.ListOptions) ([]api.Object, api.ListMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, 0, len(f.objs))
	for key, o := range f.objs {
		if o.kind == k {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	var out []api.Object
	meta := api.ListMeta{ResourceVersion: strconv.FormatInt(f.rev, 10)}
	for _, key := range keys {
		if opts.Continue != "" && key <= opts.Continue {
			continue
		}
		obj := f.decode(f.objs[key])
		if project != "" && obj.Meta().Project != project {
			continue
		}
		if !opts.Selector.Matches(obj.Meta().Labels) || opts.Filter != nil && !opts.Filter(obj) {
			continue
		}
		if opts.Limit > 0 && len(out) == opts.Limit {
			meta.Continue = fkey(k, out[len(out)-1].Meta().Project, out[len(out)-1].Meta().Name)
			break
		}
		out = append(out, obj)
	}
	return out, meta, nil
}

func (f *fakeStore) Watch(ctx context.Context, k *api.Kind, project string, fromRev int64) (<-chan store.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWatcher{kind: k, project: project, ch: make(chan store.Event, 1024)}
	if fromRev > 0 && fromRev < f.compacted {
		w.ch <- store.Event{Err: store.ErrCompacted}
		close(w.ch)
		return w.ch, nil
	}
	for _, ev := range f.log {
		if ev.Revision > fromRev && fromRev > 0 && w.matches(ev.Object) {
			w.ch <- ev
		}
	}
	f.watchers[w] = true
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.watchers, w)
		close(w.ch)
		f.mu.Unlock()
	}()
	return w.ch, nil
}

// compact forgets the change log up to the current revision: watches
// from older revisions fail with ErrCompacted.
func (f *fakeStore) compact() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	f.compacted = f.rev
	f.log = nil
}

func (f *fakeStore) ListClaims(_ context.Context, prefix string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for c, h := range f.claims {
		if strings.HasPrefix(c, prefix) {
			out[c] = h
		}
	}
	return out, nil
}

func (f *fakeStore) UpdateClaims(ctx context.Context, obj api.Object, add, release []string) error {
	f.mu.Lock()
	m := obj.Meta()
	key := fkey(obj.GetKind(), m.Project, m.Name)
	for _, c := range add {
		if h, ok := f.claims[c]; ok && h != key {
			f.mu.Unlock()
			return &store.ClaimError{Claim: c, Holder: h}
		}
	}
	f.mu.Unlock()
	if err := f.Update(ctx, obj); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var next []string
	for _, c := range f.claimsOf[key] {
		if slices.Contains(release, c) && !slices.Contains(add, c) {
			delete(f.claims, c)
		} else {
			next = append(next, c)
		}
	}
	for _, c := range add {
		if f.claims[c] != key {
			f.claims[c] = key
			next = append(next, c)
		}
	}
	f.claimsOf[key] = next
	return nil
}

func (f *fakeStore) WithGuard(store.Guard) store.Interface { return f }

func (f *fakeStore) Presence() store.Presence { return (*fakePresence)(f) }

type fakePresence fakeStore

func (p *fakePresence) Renew(_ context.Context, name string, ttl time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.alive[name] = ttl
	return nil
}

func (p *fakePresence) Alive(context.Context) (map[string]bool, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for n := range p.alive {
		out[n] = true
	}
	return out, p.rev, nil
}

func (p *fakePresence) Watch(ctx context.Context, _ int64) (<-chan store.PresenceEvent, error) {
	ch := make(chan store.PresenceEvent)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

func (p *fakePresence) Suspect(_ context.Context, name string, ttl time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.alive[name]; ok && cur > ttl {
		p.alive[name] = ttl
	}
	return nil
}

func (p *fakePresence) Remove(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.alive, name)
	return nil
}

var _ store.Interface = (*fakeStore)(nil)
