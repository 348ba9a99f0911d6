package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// Key prefixes of the layout described in the package comment.
const (
	objectPrefix   = "/ouro/v1/"
	idemPrefix     = "/ouro/idem/"
	presencePrefix = "/ouro/alive/"
)

// DefaultIdempotencyTTL is how long an idempotency key is remembered when
// CreateOptions.IdempotencyTTL is zero.
const DefaultIdempotencyTTL = 24 * time.Hour

// etcdStore implements Interface over an etcd client.
type etcdStore struct {
	cli    *clientv3.Client
	guards []Guard
	leases *leaseCache
}

// NewEtcd returns a store keeping objects in etcd through cli.
func NewEtcd(cli *clientv3.Client) Interface {
	return &etcdStore{cli: cli, leases: newLeaseCache(cli)}
}

// WithGuard returns a view whose writes also require g to hold.
func (s *etcdStore) WithGuard(g Guard) Interface {
	guards := append(append([]Guard(nil), s.guards...), g)
	return &etcdStore{cli: s.cli, guards: guards, leases: s.leases}
}

// Presence returns the heartbeat keys. Presence writes are never guarded.
func (s *etcdStore) Presence() Presence { return &etcdPresence{cli: s.cli} }

// kindPrefix is the key prefix of all objects of kind in project (all
// projects when project is "" or the kind is cluster-scoped).
func kindPrefix(kind *api.Kind, project string) string {
	p := objectPrefix + kind.Plural + "/"
	if kind.Namespaced && project != "" {
		p += project + "/"
	}
	return p
}

// objectKey is the key of one object.
func objectKey(kind *api.Kind, project, name string) string {
	if kind.Namespaced {
		return objectPrefix + kind.Plural + "/" + project + "/" + name
	}
	return objectPrefix + kind.Plural + "/" + name
}

// idemKey is the key of an idempotency record.
func idemKey(kind *api.Kind, project, key string) string {
	sum := sha256.Sum256([]byte(key))
	return idemPrefix + kind.Plural + "/" + project + "/" + hex.EncodeToString(sum[:])
}

// checkName validates the parts of a key so that no object can be written
// under another kind or project.
func checkName(kind *api.Kind, project, name string) error {
	if kind == nil {
		return errors.New("store: nil kind")
	}
	if name == "" || !validSegment(name) {
		return fmt.Errorf("store: %s: invalid name %q", kind.Name, name)
	}
	if kind.Namespaced && (project == "" || !validSegment(project)) {
		return fmt.Errorf("store: %s %q: invalid project %q", kind.Name, name, project)
	}
	return nil
}

// validSegment reports whether s can be one key segment.
func validSegment(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return s != "." && s != ".."
}

// projectOf returns the project of obj as stored: empty for cluster kinds.
func projectOf(obj api.Object) string {
	if !obj.GetKind().Namespaced {
		return ""
	}
	return obj.Meta().Project
}

// encode marshals obj without its resourceVersion, which etcd keeps.
func encode(obj api.Object) ([]byte, error) {
	m := obj.Meta()
	rv := m.ResourceVersion
	m.ResourceVersion = ""
	b, err := json.Marshal(obj)
	m.ResourceVersion = rv
	if err != nil {
		return nil, fmt.Errorf("store: encode %s %q: %w", obj.GetKind().Name, m.Name, err)
	}
	return b, nil
}

// decodeInto resets out and fills it from kv.
func decodeInto(kv *mvccpb.KeyValue, out api.Object) error {
	v := reflect.ValueOf(out)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().SetZero()
	}
	if err := json.Unmarshal(kv.Value, out); err != nil {
		return fmt.Errorf("store: decode %s: %w", kv.Key, err)
	}
	out.Meta().ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	return nil
}

// decodeNew returns a new object of kind decoded from kv.
func decodeNew(kind *api.Kind, kv *mvccpb.KeyValue) (api.Object, error) {
	obj := kind.New()
	if err := decodeInto(kv, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// parseRV parses a resourceVersion.
func parseRV(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a positive integer: %w", rv, ErrConflict)
	}
	return n, nil
}

// guardCmps returns the comparisons that keep the guards.
func (s *etcdStore) guardCmps() []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, len(s.guards))
	for i, g := range s.guards {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(g.Key()), "=", g.Revision())
	}
	return cmps
}

// guardGets returns reads of the guard keys, for the Else branch of a txn.
func (s *etcdStore) guardGets() []clientv3.Op {
	ops := make([]clientv3.Op, len(s.guards))
	for i, g := range s.guards {
		ops[i] = clientv3.OpGet(g.Key(), clientv3.WithKeysOnly())
	}
	return ops
}

// guardFailed inspects the guard reads, which come last in the responses
// of a failed txn, and reports whether a guard no longer holds.
func (s *etcdStore) guardFailed(resp *clientv3.TxnResponse) error {
	n := len(resp.Responses) - len(s.guards)
	for i, g := range s.guards {
		kvs := resp.Responses[n+i].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != g.Revision() {
			return fmt.Errorf("store: guard %s at revision %d: %w", g.Key(), g.Revision(), ErrGuardFailed)
		}
	}
	return nil
}

// Create implements Interface.
func (s *etcdStore) Create(ctx context.Context, obj api.Object, opts CreateOptions) (bool, error) {
	kind, m := obj.GetKind(), obj.Meta()
	project := projectOf(obj)
	if err := checkName(kind, project, m.Name); err != nil {
		return false, err
	}
	key := objectKey(kind, project, m.Name)
	m.UID = uuid.NewString()
	m.CreationTimestamp = time.Now().UTC()
	m.Generation = 1
	if !kind.Namespaced {
		m.Project = ""
	}
	val, err := encode(obj)
	if err != nil {
		return false, err
	}

	// Leases are shared and may expire between grant and use; one retry
	// with fresh leases covers that.
	for attempt := 0; ; attempt++ {
		existed, err := s.create(ctx, obj, key, val, opts)
		if attempt == 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.leases.forget()
			continue
		}
		return existed, err
	}
}

// create runs the create transaction once.
func (s *etcdStore) create(ctx context.Context, obj api.Object, key string, val []byte, opts CreateOptions) (bool, error) {
	kind, m := obj.GetKind(), obj.Meta()
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	var putOpts []clientv3.OpOption
	if opts.TTL > 0 {
		id, err := s.leases.get(ctx, opts.TTL)
		if err != nil {
			return false, fmt.Errorf("store: create %s %q: %w", kind.Name, m.Name, err)
		}
		putOpts = append(putOpts, clientv3.WithLease(id))
	}
	then := []clientv3.Op{clientv3.OpPut(key, string(val), putOpts...)}
	els := []clientv3.Op{clientv3.OpGet(key)}
	claimCmps, claimPuts, claimGets, err := claimOps(key, opts.Claims)
	if err != nil {
		return false, fmt.Errorf("store: create %s %q: %w", kind.Name, m.Name, err)
	}
	if len(opts.Claims) > 0 && opts.TTL > 0 {
		return false, fmt.Errorf("store: create %s %q: claims cannot expire with a TTL", kind.Name, m.Name)
	}

	var ikey string
	if opts.IdempotencyKey != "" {
		ikey = idemKey(kind, projectOf(obj), opts.IdempotencyKey)
		rec, err := json.Marshal(idemRecord{Key: key, Hash: opts.RequestHash})
		if err != nil {
			return false, fmt.Errorf("store: encode idempotency record: %w", err)
		}
		ttl := opts.IdempotencyTTL
		if ttl <= 0 {
			ttl = DefaultIdempotencyTTL
		}
		id, err := s.leases.get(ctx, ttl)
		if err != nil {
			return false, fmt.Errorf("store: create %s %q: idempotency record: %w", kind.Name, m.Name, err)
		}
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ikey), "=", 0))
		then = append(then, clientv3.OpPut(ikey, string(rec), clientv3.WithLease(id)))
		els = append(els, clientv3.OpGet(ikey))
	}

	claimsAt := len(els)
	cmps = append(cmps, claimCmps...)
	then = append(then, claimPuts...)
	els = append(els, claimGets...)
	freeAt := len(els)
	for _, p := range opts.FreeClaimPrefixes {
		if err := checkClaim(p); err != nil {
			return false, fmt.Errorf("store: create %s %q: free claim prefix: %w", kind.Name, m.Name, err)
		}
		k := claimPrefix + p
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0).WithPrefix())
		els = append(els, clientv3.OpGet(k, clientv3.WithPrefix(), clientv3.WithLimit(1)))
	}

	resp, err := s.cli.Txn(ctx).
		If(append(cmps, s.guardCmps()...)...).
		Then(then...).
		Else(append(els, s.guardGets()...)...).
		Commit()
	if err != nil {
		return false, fmt.Errorf("store: create %s %q: %w", kind.Name, m.Name, err)
	}
	if resp.Succeeded {
		m.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
		return false, nil
	}
	if err := s.guardFailed(resp); err != nil {
		return false, err
	}
	if ikey != "" {
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			return s.replay(ctx, obj, kvs[0], resp.Responses[0].GetResponseRange().Kvs, opts.RequestHash)
		}
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		if err := claimTaken(resp, claimsAt, opts.Claims); err != nil {
			return false, fmt.Errorf("store: create %s %q: %w", kind.Name, m.Name, err)
		}
		for i := range opts.FreeClaimPrefixes {
			if kvs := resp.Responses[freeAt+i].GetResponseRange().Kvs; len(kvs) > 0 {
				ce := &ClaimError{Claim: strings.TrimPrefix(string(kvs[0].Key), claimPrefix), Holder: string(kvs[0].Value)}
				return false, fmt.Errorf("store: create %s %q: %w", kind.Name, m.Name, ce)
			}
		}
	}
	return false, fmt.Errorf("store: %s %q: %w", kind.Name, m.Name, ErrAlreadyExists)
}

// idemRecord is the value of an idempotency key.
type idemRecord struct {
	Key  string `json:"key"`
	Hash string `json:"hash"`
}

// replay answers a create whose idempotency key was used before: with the
// object made then when the request is the same. objKVs is what the failed
// txn read at the new object's key.
func (s *etcdStore) replay(ctx context.Context, obj api.Object, recKV *mvccpb.KeyValue, objKVs []*mvccpb.KeyValue, hash string) (bool, error) {
	kind, name := obj.GetKind(), obj.Meta().Name
	var rec idemRecord
	if err := json.Unmarshal(recKV.Value, &rec); err != nil {
		return false, fmt.Errorf("store: decode idempotency record %s: %w", recKV.Key, err)
	}
	if rec.Hash != hash {
		return false, fmt.Errorf("store: create %s %q: %w", kind.Name, name, ErrIdempotencyMismatch)
	}
	if len(objKVs) == 0 || string(objKVs[0].Key) != rec.Key {
		resp, err := s.cli.Get(ctx, rec.Key)
		if err != nil {
			return false, fmt.Errorf("store: read object of idempotency record: %w", err)
		}
		objKVs = resp.Kvs
	}
	if len(objKVs) == 0 || objKVs[0].CreateRevision != recKV.CreateRevision {
		// The object made with this key was deleted (perhaps replaced by
		// another of the same name): replaying must not return that one.
		return false, fmt.Errorf("store: %s created with this idempotency key was deleted since: %w", kind.Name, ErrNotFound)
	}
	if err := decodeInto(objKVs[0], obj); err != nil {
		return false, err
	}
	return true, nil
}

// Get implements Interface.
func (s *etcdStore) Get(ctx context.Context, kind *api.Kind, project, name string, out api.Object) error {
	if !kind.Namespaced {
		project = ""
	}
	if err := checkName(kind, project, name); err != nil {
		return err
	}
	key := objectKey(kind, project, name)
	if kv, ok := prefetched(ctx, key); ok {
		if kv == nil {
			return fmt.Errorf("store: %s %q: %w", kind.Name, name, ErrNotFound)
		}
		return decodeInto(kv, out)
	}
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("store: get %s %q: %w", kind.Name, name, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("store: %s %q: %w", kind.Name, name, ErrNotFound)
	}
	return decodeInto(resp.Kvs[0], out)
}

// Update implements Interface.
func (s *etcdStore) Update(ctx context.Context, obj api.Object) error {
	kind, m := obj.GetKind(), obj.Meta()
	project := projectOf(obj)
	if err := checkName(kind, project, m.Name); err != nil {
		return err
	}
	if m.ResourceVersion == "" {
		return fmt.Errorf("store: update %s %q: metadata.resourceVersion is required", kind.Name, m.Name)
	}
	rv, err := parseRV(m.ResourceVersion)
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	key := objectKey(kind, project, m.Name)
	cur, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	if len(cur.Kvs) == 0 {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, ErrNotFound)
	}
	if cur.Kvs[0].ModRevision != rv {
		return fmt.Errorf("store: update %s %q at version %d, stored %d: %w", kind.Name, m.Name, rv, cur.Kvs[0].ModRevision, ErrConflict)
	}
	stored, err := decodeNew(kind, cur.Kvs[0])
	if err != nil {
		return err
	}
	m.UID = stored.Meta().UID
	m.CreationTimestamp = stored.Meta().CreationTimestamp
	val, err := encode(obj)
	if err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).
		If(append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rv)}, s.guardCmps()...)...).
		Then(clientv3.OpPut(key, string(val), clientv3.WithIgnoreLease())).
		Else(append([]clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())}, s.guardGets()...)...).
		Commit()
	if err != nil {
		return fmt.Errorf("store: update %s %q: %w", kind.Name, m.Name, err)
	}
	if !resp.Succeeded {
		return s.writeFailed(resp, "update", kind, m.Name)
	}
	m.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
	return nil
}

// writeFailed explains a failed conditional write whose Else branch read
// the object key first and the guards last.
func (s *etcdStore) writeFailed(resp *clientv3.TxnResponse, op string, kind *api.Kind, name string) error {
	if err := s.guardFailed(resp); err != nil {
		return err
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return fmt.Errorf("store: %s %s %q: %w", op, kind.Name, name, ErrNotFound)
	}
	return fmt.Errorf("store: %s %s %q: %w", op, kind.Name, name, ErrConflict)
}

// Delete implements Interface. The object's claims are released in the
// same transaction.
func (s *etcdStore) Delete(ctx context.Context, kind *api.Kind, project, name, resourceVersion string) error {
	if !kind.Namespaced {
		project = ""
	}
	if err := checkName(kind, project, name); err != nil {
		return err
	}
	var want int64
	if resourceVersion != "" {
		rv, err := parseRV(resourceVersion)
		if err != nil {
			return fmt.Errorf("store: delete %s %q: %w", kind.Name, name, err)
		}
		want = rv
	}
	key := objectKey(kind, project, name)
	// Without a resourceVersion the delete is conditional on the version
	// read with the claims; a concurrent write only makes it read again.
	for attempt := 0; ; attempt++ {
		cur, held, err := s.readWithClaims(ctx, key)
		if err != nil {
			return fmt.Errorf("store: delete %s %q: %w", kind.Name, name, err)
		}
		if cur == nil {
			return fmt.Errorf("store: delete %s %q: %w", kind.Name, name, ErrNotFound)
		}
		rv := want
		if rv == 0 {
			rv = cur.ModRevision
		}
		then := []clientv3.Op{clientv3.OpDelete(key)}
		if len(held.claims) > 0 {
			then = append(then, clientv3.OpDelete(claimsOfKey(key)))
			for _, c := range held.claims {
				then = append(then, clientv3.OpDelete(claimPrefix+c))
			}
		}
		resp, err := s.cli.Txn(ctx).
			If(append([]clientv3.Cmp{
				clientv3.Compare(clientv3.ModRevision(key), "=", rv),
				clientv3.Compare(clientv3.ModRevision(claimsOfKey(key)), "=", held.rev),
			}, s.guardCmps()...)...).
			Then(then...).
			Else(append([]clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())}, s.guardGets()...)...).
			Commit()
		if err != nil {
			return fmt.Errorf("store: delete %s %q: %w", kind.Name, name, err)
		}
		if resp.Succeeded {
			return nil
		}
		err = s.writeFailed(resp, "delete", kind, name)
		if want != 0 || !errors.Is(err, ErrConflict) || attempt >= maxDeleteRetries {
			return err
		}
	}
}
