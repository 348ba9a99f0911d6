package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// A controller acting for a user (the stack controller, for the author of
// a stack) writes objects through these methods: the same authorization,
// admission, defaulting and idempotency as the REST API's create, update
// and delete, with the controller's (leader-guarded) store for the write.

// CreateObject creates obj for id as POST does, writing with st. obj
// carries kind, metadata (name, project, labels) and spec; on success it
// holds the stored object. existed is true when key (an idempotency key)
// was used before for the same request and obj is the object made then.
func (s *Server) CreateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object, key string) (existed bool, err error) {
	k := obj.GetKind()
	if err := checkPathMeta(k, obj.Meta(), obj.Meta().Project, ""); err != nil {
		return false, err
	}
	return s.createObject(ctx, st, id, obj, key)
}

// UpdateObject updates obj for id as PUT does, writing with st: obj must
// carry the resourceVersion it was read at. On success obj holds the
// stored object.
func (s *Server) UpdateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object) error {
	k, m := obj.GetKind(), obj.Meta()
	if m.ResourceVersion == "" {
		return api.Invalid("metadata.resourceVersion", "send the resourceVersion of the object you read", "resourceVersion is required")
	}
	cur, err := s.readObject(ctx, k, m.Project, m.Name)
	if err != nil {
		return err
	}
	if err := authorize(id, objectAttrs(auth.VerbUpdate, cur), k.Name, m.Name); err != nil {
		return err
	}
	if rv := cur.Meta().ResourceVersion; rv != m.ResourceVersion {
		return api.Conflict("%s %q is at resourceVersion %s, not %s", k, m.Name, rv, m.ResourceVersion)
	}
	return s.updateObject(ctx, st, id, cur, obj)
}

// DeleteObject deletes the object of kind k for id as DELETE does,
// writing with st. gone is true when the object no longer exists (it was
// deleted or was not there); false when it was marked for deletion and
// goes later (an instance terminating).
func (s *Server) DeleteObject(ctx context.Context, st store.Interface, id *auth.Identity, k *api.Kind, project, name string) (gone bool, err error) {
	if !k.Namespaced {
		project = ""
	}
	cur := k.New()
	if err := s.store.Get(ctx, k, project, name, cur); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		return false, fmt.Errorf("get %s %s/%s: %w", k, project, name, err)
	}
	status, _, err := s.deleteObject(ctx, st, id, cur, "")
	if err != nil {
		return false, err
	}
	return status == http.StatusOK, nil
}

// readObject reads one object, answering NotFound in the API's words.
func (s *Server) readObject(ctx context.Context, k *api.Kind, project, name string) (api.Object, error) {
	obj := k.New()
	if err := s.store.Get(ctx, k, project, name, obj); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, api.NotFound(k.Name, name)
		}
		return nil, fmt.Errorf("get %s %s/%s: %w", k, project, name, err)
	}
	return obj, nil
}
