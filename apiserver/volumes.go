package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Storage pools are admin-made and their Ceph key is never shown.
// Volumes and snapshots are created with admission.FinalizerVolume: a
// delete marks them (202), the agent holding the data removes it and
// reports state "deleted", and the volume controller removes the object.
// An instance's spec.volumes is stored with the volumes' claims taken or
// released in the same transaction (admission.UpdateInstanceVolumes).

var storagePoolHooks = kindHooks{
	create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
		p := o.(*api.StoragePool)
		if err := admission.ValidateStoragePool(p, nil); err != nil {
			return err
		}
		return s.checkPool(ctx, p, nil)
	},
	update: func(s *Server, ctx context.Context, _ *auth.Identity, old, o api.Object) error {
		p, was := o.(*api.StoragePool), old.(*api.StoragePool)
		if err := admission.ValidateStoragePool(p, was); err != nil {
			return err
		}
		return s.checkPool(ctx, p, was)
	},
	status: func(*auth.Identity, api.Object, api.Object) error {
		return api.Invalid("status", "the server sets it from the spec", "the status of a storage pool cannot be written")
	},
	beforeDelete: beforeDelete,
	prepareOut:   hideCephKey,
}

// checkPool checks a ceph pool against its cluster with Config.CheckPool,
// when it is new or its Ceph settings changed.
func (s *Server) checkPool(ctx context.Context, p, old *api.StoragePool) error {
	if s.cfg.CheckPool == nil || p.Spec.Type != api.PoolCeph || p.Spec.Ceph == nil {
		return nil
	}
	if old != nil && old.Spec.Ceph != nil && reflect.DeepEqual(*old.Spec.Ceph, *p.Spec.Ceph) {
		return nil
	}
	return s.cfg.CheckPool(ctx, p)
}

// hideCephKey blanks a pool's Ceph key: it is written, never read back.
func hideCephKey(o api.Object) {
	if c := o.(*api.StoragePool).Spec.Ceph; c != nil {
		cp := *c
		cp.Key = ""
		o.(*api.StoragePool).Spec.Ceph = &cp
	}
}

var volumeHooks = kindHooks{
	create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
		return s.adm.ValidateVolumeCreate(ctx, o.(*api.Volume))
	},
	update: func(s *Server, ctx context.Context, _ *auth.Identity, old, o api.Object) error {
		return s.adm.ValidateVolumeUpdate(ctx, old.(*api.Volume), o.(*api.Volume))
	},
	status: func(id *auth.Identity, old, o api.Object) error {
		return admission.ValidateVolumeStatus(id, old.(*api.Volume), o.(*api.Volume))
	},
	remove: removeVolumeData,
}

var snapshotHooks = kindHooks{
	create: func(s *Server, ctx context.Context, _ *auth.Identity, o api.Object) error {
		return s.adm.ValidateSnapshotCreate(ctx, o.(*api.VolumeSnapshot))
	},
	update: func(_ *Server, _ context.Context, _ *auth.Identity, old, o api.Object) error {
		return admission.ValidateSnapshotUpdate(old.(*api.VolumeSnapshot), o.(*api.VolumeSnapshot))
	},
	status: func(id *auth.Identity, old, o api.Object) error {
		return admission.ValidateSnapshotStatus(id, old.(*api.VolumeSnapshot), o.(*api.VolumeSnapshot))
	},
	remove: removeVolumeData,
}

// removeVolumeData admits the delete of a volume or snapshot and marks
// it (202); one without a finalizer left is deleted (200).
func removeVolumeData(s *Server, ctx context.Context, st store.Interface, obj api.Object, rv string) (int, api.Object, error) {
	cur := obj
	k := obj.GetKind()
	for range maxConflictRetries {
		m := cur.Meta()
		if m.DeletionTimestamp == nil {
			if err := s.adm.BeforeDelete(ctx, st, cur); err != nil {
				return 0, nil, err
			}
		}
		var err error
		switch {
		case len(m.Finalizers) == 0:
			if err = st.Delete(ctx, k, m.Project, m.Name, m.ResourceVersion); err == nil {
				return http.StatusOK, cur, nil
			}
		case m.DeletionTimestamp != nil:
			return http.StatusAccepted, cur, nil
		default:
			now := time.Now().UTC()
			m.DeletionTimestamp = &now
			markDeleting(cur)
			if err = st.Update(ctx, cur); err == nil {
				return http.StatusAccepted, cur, nil
			}
		}
		if !errors.Is(err, store.ErrConflict) || rv != "" {
			return 0, nil, fmt.Errorf("delete %s %s: %w", k, m.Name, err)
		}
		next := k.New()
		if err := st.Get(ctx, k, m.Project, m.Name, next); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return 0, nil, api.NotFound(k.Name, m.Name)
			}
			return 0, nil, fmt.Errorf("get %s %s/%s: %w", k, m.Project, m.Name, err)
		}
		cur = next
	}
	return 0, nil, api.Conflict("%s %q changes too fast", k, cur.Meta().Name)
}

func markDeleting(o api.Object) {
	switch o := o.(type) {
	case *api.Volume:
		o.Status.State = api.VolumeDeleting
	case *api.VolumeSnapshot:
		o.Status.State = api.SnapshotDeleting
	}
}

// poolKey is the body of GET /v1/storagepools/{name}/key.
type poolKey struct {
	Key string `json:"key"`
}

// storagePoolKey answers a pool's Ceph key to the hosts (whose agents
// open its volumes) and to cluster admins; to no one else.
func (s *Server) storagePoolKey(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	name := r.PathValue("name")
	if id.Host == "" && !id.ClusterAdmin {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("%s may not read the key of storage pool %q", id, name)}
	}
	var p api.StoragePool
	if err := s.store.Get(r.Context(), api.StoragePoolKind, "", name, &p); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.NotFound(api.StoragePoolKind.Name, name)
		}
		return fmt.Errorf("get storage pool %s: %w", name, err)
	}
	out := poolKey{}
	if p.Spec.Ceph != nil {
		out.Key = p.Spec.Ceph.Key
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
