package ec2

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/store"
)

// staleFor bounds how long a local change keeps an object read from the
// store rather than the cache, should the watch never show it.
const staleFor = 10 * time.Second

// credentials reads access keys and users for authentication. With a
// life context it keeps both kinds in memory, fed by a list and a watch
// of the store (controller/cache informers), so that a request reads
// nothing from etcd: a key or user deleted or changed anywhere stops
// counting as soon as this server's watch delivers the change, not after
// a TTL. Until the first list, and for a key the cache does not hold (a
// key made a moment ago on another server), it reads the store. A change
// made through this server (Changed) is read from the store until the
// cache shows it, so that the caller who deleted a key or removed a role
// is never answered from the old object.
type credentials struct {
	st   store.Interface
	life context.Context

	start sync.Once
	keys  *cache.Informer
	users *cache.Informer

	mu    sync.Mutex
	stale map[string]staleEntry // by kind name and object name
}

// staleEntry is a local change the cache has not shown yet.
type staleEntry struct {
	rev     int64 // the object's resourceVersion after the change; 0: deleted
	expires time.Time
}

// newStaleEntry is the entry of obj just written (gone: deleted) through
// this server; false when obj has no valid resourceVersion.
func newStaleEntry(obj api.Object, gone bool) (staleEntry, bool) {
	e := staleEntry{expires: time.Now().Add(staleFor)}
	if !gone {
		rev, err := strconv.ParseInt(obj.Meta().ResourceVersion, 10, 64)
		if err != nil {
			return staleEntry{}, false
		}
		e.rev = rev
	}
	return e, true
}

func newCredentials(st store.Interface, life context.Context) *credentials {
	return &credentials{st: st, life: life, stale: map[string]staleEntry{}}
}

// run starts the informers on first use.
func (cr *credentials) run() {
	if cr.life == nil {
		return
	}
	cr.start.Do(func() {
		cr.keys = cache.New(cr.st, api.AccessKeyKind, time.Hour, nil)
		cr.users = cache.New(cr.st, api.UserKind, time.Hour, nil)
		go cr.keys.Run(cr.life)
		go cr.users.Run(cr.life)
	})
}

// changed records that obj was written (deleted, when gone) through this
// server.
func (cr *credentials) changed(obj api.Object, gone bool) {
	e, ok := newStaleEntry(obj, gone)
	if !ok {
		return
	}
	cr.mu.Lock()
	cr.stale[obj.GetKind().Name+"/"+obj.Meta().Name] = e
	cr.mu.Unlock()
}

// cached returns the informer's object name, if the informer may answer
// for it: synced, and not changed locally since what it shows.
func (cr *credentials) cached(in *cache.Informer, k *api.Kind, name string) (api.Object, bool) {
	if in == nil {
		return nil, false
	}
	select {
	case <-in.Synced():
	default:
		return nil, false
	}
	o, ok := in.Get(name)
	key := k.Name + "/" + name
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if e, isStale := cr.stale[key]; isStale {
		shown := false
		switch {
		case e.rev == 0:
			shown = !ok
		case ok:
			rev, _ := strconv.ParseInt(o.Meta().ResourceVersion, 10, 64)
			shown = rev >= e.rev
		}
		if !shown && time.Now().Before(e.expires) {
			return nil, false
		}
		delete(cr.stale, key)
	}
	return o, ok
}

// get reads the object name of kind k into out (a *api.AccessKey or
// *api.User), from the cache when it may answer, else from the store.
// It answers store.ErrNotFound for a missing object.
func (cr *credentials) get(ctx context.Context, k *api.Kind, name string, out api.Object) error {
	cr.run()
	in := cr.users
	if k == api.AccessKeyKind {
		in = cr.keys
	}
	if o, ok := cr.cached(in, k, name); ok {
		// Shared with the cache: copy the parts read, never modify.
		switch out := out.(type) {
		case *api.AccessKey:
			*out = *o.(*api.AccessKey)
		case *api.User:
			*out = *o.(*api.User)
		default:
			return fmt.Errorf("credentials: %T is not cached", out)
		}
		return nil
	}
	if err := cr.st.Get(ctx, k, "", name, out); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		return fmt.Errorf("read %s %s: %w", k.Name, name, err)
	}
	return nil
}
