package watchcache

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// maxCachedPerKind bounds the objects the list cache keeps of one kind;
// a kind with more is listed without the cache.
const maxCachedPerKind = 100_000

// listCache makes full lists cheap. It keeps the objects that full lists
// returned, decoded, prepared for output and encoded, each with the
// revision it was read at. A list reads only the versions of the kind
// from the store, then the values of the objects that changed since the
// last list; an object that did not change is neither read, decoded nor
// encoded again. Every list is still one consistent snapshot of the
// store: the versions and the values are read at one revision, and a
// cached object is used only for exactly the revision the store lists.
type listCache struct {
	snap    store.Snapshots
	prepare func(api.Object) api.Object
	mu      sync.Mutex
	kinds   map[*api.Kind]map[string]*cachedObject
}

// cachedObject is one object as a list answers it, shared by lists. Only
// its views change: each is encoded when a list first asks for it.
type cachedObject struct {
	rev int64
	obj api.Object // prepared for output
	raw []byte     // obj encoded

	mu    sync.Mutex
	views map[*api.View][]byte // obj's views, encoded
}

// viewed returns the view of the object, encoded, encoding it on first
// use.
func (co *cachedObject) viewed(v *api.View) ([]byte, error) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if raw, ok := co.views[v]; ok {
		return raw, nil
	}
	raw, err := json.Marshal(v.Of(co.obj))
	if err != nil {
		m := co.obj.Meta()
		return nil, fmt.Errorf("encode the %s view of %s %s: %w", v.Name, co.obj.GetKind().Name, m.Name, err)
	}
	if co.views == nil {
		co.views = make(map[*api.View][]byte, 1)
	}
	co.views[v] = raw
	return raw, nil
}

func newListCache(snap store.Snapshots, prepare func(api.Object) api.Object) *listCache {
	return &listCache{snap: snap, prepare: prepare, kinds: map[*api.Kind]map[string]*cachedObject{}}
}

// list returns the objects of kind k in project (all projects for ""),
// sorted by key, and the revision they were read at.
func (c *listCache) list(ctx context.Context, k *api.Kind, project string) ([]*cachedObject, int64, error) {
	if !k.Namespaced {
		project = ""
	}
	vers, rev, err := c.snap.Versions(ctx, k, project)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*cachedObject, len(vers))
	missing := map[string]int64{}
	c.mu.Lock()
	cached := c.kinds[k]
	for i, v := range vers {
		if co := cached[v.Key]; co != nil && co.rev == v.Revision {
			out[i] = co
		} else {
			missing[v.Key] = v.Revision
		}
	}
	c.mu.Unlock()

	if len(missing) > 0 {
		objs, err := c.snap.ReadAt(ctx, k, project, rev, func(v store.Version) bool {
			r, ok := missing[v.Key]
			return ok && r == v.Revision
		})
		if err != nil {
			return nil, 0, err
		}
		if len(objs) != len(missing) {
			return nil, 0, fmt.Errorf("list %s: read %d changed objects at revision %d, want %d", k.Plural, len(objs), rev, len(missing))
		}
		fresh, err := encodeObjects(objs, c.prepare)
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", k.Plural, err)
		}
		// ReadAt answers in key order, as Versions did.
		j := 0
		for i := range out {
			if out[i] == nil {
				fresh[j].rev = vers[i].Revision
				out[i] = fresh[j]
				j++
			}
		}
	}
	c.keep(k, project, vers, out)
	return out, rev, nil
}

// remember keeps obj, prepared for output and encoded as raw, as of its
// resourceVersion: a watch saw it, and the next list that finds the store
// at that version for it need not read it. It never replaces a newer one
// and keeps only kinds that were listed in full.
func (c *listCache) remember(k *api.Kind, obj api.Object, raw []byte) {
	m := obj.Meta()
	rev, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	if err != nil {
		return
	}
	key := m.Name
	if k.Namespaced {
		key = m.Project + "/" + m.Name
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cached := c.kinds[k]
	if cached == nil {
		return // nobody lists this kind: keeping its objects would only cost memory
	}
	if old := cached[key]; (old != nil && old.rev >= rev) || len(cached) >= maxCachedPerKind {
		return
	}
	cached[key] = &cachedObject{rev: rev, obj: obj, raw: raw}
}

// keep stores what a list returned as the cache of its scope: the whole
// kind, or one project of it.
func (c *listCache) keep(k *api.Kind, project string, vers []store.Version, objs []*cachedObject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.kinds[k]
	next := make(map[string]*cachedObject, max(len(objs), len(old)))
	if project != "" {
		// Other projects' objects stay as they were.
		for key, co := range old {
			if !strings.HasPrefix(key, project+"/") {
				next[key] = co
			}
		}
	}
	for i, v := range vers {
		next[v.Key] = objs[i]
	}
	if len(next) > maxCachedPerKind {
		delete(c.kinds, k)
		return
	}
	c.kinds[k] = next
}

// encodeObjects prepares objs for output and encodes them (revisions
// left for the caller) with prepare, on all CPUs for many objects:
// encoding dominates the cost of a large list.
func encodeObjects(objs []api.Object, prepare func(api.Object) api.Object) ([]*cachedObject, error) {
	out := make([]*cachedObject, len(objs))
	workers := max(1, min(runtime.GOMAXPROCS(0), len(objs)/(parallelEncodeMin/2)))
	chunk := (len(objs) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := min(w*chunk, len(objs)), min((w+1)*chunk, len(objs))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				obj := prepare(objs[i])
				raw, err := json.Marshal(obj)
				if err != nil {
					errs[w] = fmt.Errorf("encode %s %s: %w", obj.GetKind().Name, obj.Meta().Name, err)
					return
				}
				out[i] = &cachedObject{obj: obj, raw: raw}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
