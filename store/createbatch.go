package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// batchCreator is a store that can create several objects in one
// transaction.
type batchCreator interface {
	createBatch(ctx context.Context, objs []api.Object, ttl time.Duration) error
}

// CreateBatch creates objs (at most MaxBatch, new names, no claims nor
// idempotency keys), each expiring after ttl when ttl > 0, and returns
// each one's error. It is Create of each: a store that can writes them in
// one transaction, and when that transaction fails (a name taken, a guard
// lost) each object is created on its own to learn its error.
func CreateBatch(ctx context.Context, st Interface, objs []api.Object, ttl time.Duration) []error {
	errs := make([]error, len(objs))
	if b, ok := st.(batchCreator); ok && len(objs) > 1 && len(objs) <= MaxBatch {
		if err := b.createBatch(ctx, objs, ttl); err == nil {
			return errs
		}
	}
	for i, obj := range objs {
		obj.Meta().ResourceVersion = ""
		_, errs[i] = st.Create(ctx, obj, CreateOptions{TTL: ttl})
	}
	return errs
}

// createBatch implements batchCreator: one transaction that requires
// every name free (and the guards) and puts every object.
func (s *etcdStore) createBatch(ctx context.Context, objs []api.Object, ttl time.Duration) error {
	now := time.Now().UTC()
	keys := make([]string, len(objs))
	vals := make([]string, len(objs))
	for i, obj := range objs {
		kind, m := obj.GetKind(), obj.Meta()
		project := projectOf(obj)
		if err := checkName(kind, project, m.Name); err != nil {
			return err
		}
		keys[i] = objectKey(kind, project, m.Name)
		m.UID = uuid.NewString()
		m.CreationTimestamp = now
		m.Generation = 1
		if !kind.Namespaced {
			m.Project = ""
		}
		val, err := encode(obj)
		if err != nil {
			return err
		}
		vals[i] = string(val)
	}
	for attempt := 0; ; attempt++ {
		var putOpts []clientv3.OpOption
		if ttl > 0 {
			id, err := s.leases.get(ctx, ttl)
			if err != nil {
				return fmt.Errorf("store: create batch: %w", err)
			}
			putOpts = append(putOpts, clientv3.WithLease(id))
		}
		cmps := make([]clientv3.Cmp, 0, len(objs)+len(s.guards))
		puts := make([]clientv3.Op, len(objs))
		for i, key := range keys {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			puts[i] = clientv3.OpPut(key, vals[i], putOpts...)
		}
		resp, err := s.cli.Txn(ctx).If(append(cmps, s.guardCmps()...)...).Then(puts...).Commit()
		if attempt == 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.leases.forget()
			continue
		}
		if err != nil {
			return fmt.Errorf("store: create batch: %w", err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("store: create batch: a name is taken or a guard failed: %w", ErrConflict)
		}
		rv := strconv.FormatInt(resp.Header.Revision, 10)
		for _, obj := range objs {
			obj.Meta().ResourceVersion = rv
		}
		return nil
	}
}
