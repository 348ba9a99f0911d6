// Package store keeps typed API objects in etcd: create, get, update with
// optimistic concurrency on resourceVersion, delete, list with label
// selectors and pagination, watch from a revision, idempotent creates and
// short-lived presence keys for host heartbeats.
//
// Keys are laid out as
//
//	/ouro/v1/<plural>/<name>                 cluster-scoped kinds
//	/ouro/v1/<plural>/<project>/<name>       project-scoped kinds
//	/ouro/idem/<plural>/<project>/<key>      idempotency records
//	/ouro/alive/<name>                       presence (leased) keys
//	/ouro/claims/<claim>                     unique claims (an IP, a VNI), value: holder's object key
//	/ouro/claimsof/<object key>              the claims an object holds (JSON list)
//
// etcd is the only source of truth: nothing here caches state (Prefetch's
// reads live as long as one request's context).
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Errors returned by the store. The apiserver maps them to API errors.
var (
	ErrNotFound            = errors.New("not found")
	ErrAlreadyExists       = errors.New("already exists")
	ErrConflict            = errors.New("resourceVersion conflict")
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrGuardFailed means a guarded write was refused because its guard
	// (for controllers: still holding leadership) no longer holds.
	ErrGuardFailed = errors.New("write guard failed")
	// ErrCompacted means a watch asked for a revision etcd has compacted
	// away; the caller must list again.
	ErrCompacted = errors.New("revision compacted")
	// ErrClaimTaken means a claim asked for is held by another object; the
	// error is a *ClaimError naming the claim.
	ErrClaimTaken = errors.New("claim taken")
)

// ClaimError says which claim of a write was taken, and by whom. It
// wraps ErrClaimTaken.
type ClaimError struct {
	// Claim is the claim key relative to /ouro/claims/, as the caller
	// wrote it.
	Claim string
	// Holder is the store key of the object that holds the claim, when
	// it could be read.
	Holder string
}

func (e *ClaimError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("store: claim %s: %v", e.Claim, ErrClaimTaken)
	}
	return fmt.Sprintf("store: claim %s is held by %s: %v", e.Claim, e.Holder, ErrClaimTaken)
}

// Unwrap returns ErrClaimTaken.
func (e *ClaimError) Unwrap() error { return ErrClaimTaken }

// HolderName returns the name of the object holding the claim (the last
// segment of Holder), or "".
func (e *ClaimError) HolderName() string {
	return e.Holder[strings.LastIndexByte(e.Holder, '/')+1:]
}

// Interface is the typed object store.
type Interface interface {
	// Create stores a new object. It sets metadata.uid, creationTimestamp,
	// generation (1) and resourceVersion on obj. With opts.IdempotencyKey,
	// a repeated create with the same key and request hash returns the
	// object made the first time (existed == true, obj overwritten with it);
	// the same key with a different hash fails with ErrIdempotencyMismatch.
	Create(ctx context.Context, obj api.Object, opts CreateOptions) (existed bool, err error)
	// Get reads one object into out. Project is ignored for cluster kinds.
	Get(ctx context.Context, kind *api.Kind, project, name string, out api.Object) error
	// Update replaces an object if its stored resourceVersion equals
	// obj.Meta().ResourceVersion (ErrConflict otherwise, ErrNotFound if it
	// is gone) and sets the new resourceVersion on obj. The caller decides
	// metadata.generation; the store keeps uid and creationTimestamp from
	// the stored object.
	Update(ctx context.Context, obj api.Object) error
	// UpdateBatch is Update of several objects (at most MaxBatch) in one
	// transaction, for controllers writing back objects they read: the
	// stored object is not read first, so metadata.uid and
	// creationTimestamp are written as the objects carry them (the
	// resourceVersion compare makes sure they are the stored ones). An
	// object that changed or went fails alone (ErrConflict, ErrNotFound)
	// and the others are written; a failed guard fails them all. The
	// errors come in the order of objs, nil for each object written, whose
	// resourceVersion is then set.
	UpdateBatch(ctx context.Context, objs []api.Object) []error
	// Delete removes an object; with a non-empty resourceVersion only if it
	// still has that version (ErrConflict otherwise).
	Delete(ctx context.Context, kind *api.Kind, project, name, resourceVersion string) error
	// List returns the objects of a kind, in one project or (project "")
	// in all projects, sorted by project then name.
	List(ctx context.Context, kind *api.Kind, project string, opts ListOptions) ([]api.Object, api.ListMeta, error)
	// Watch streams changes of a kind in one project or all (project "")
	// after revision fromRev (0 = from now). The channel closes when ctx
	// ends; on compaction it delivers one event with Err = ErrCompacted
	// and closes.
	Watch(ctx context.Context, kind *api.Kind, project string, fromRev int64) (<-chan Event, error)
	// WithGuard returns a view of the store whose writes succeed only while
	// guard holds; otherwise they fail with ErrGuardFailed.
	WithGuard(g Guard) Interface
	// Presence returns the heartbeat keys.
	Presence() Presence
	// ListClaims returns the claims whose keys start with prefix (relative
	// to /ouro/claims/, e.g. "ip/<network-uid>/"), mapped to the store key
	// of the object holding each.
	ListClaims(ctx context.Context, prefix string) (map[string]string, error)
	// UpdateClaims is Update that, in the same transaction, takes the
	// claims in add (each must be free or already held by obj, else a
	// *ClaimError) and releases those in release that obj holds.
	UpdateClaims(ctx context.Context, obj api.Object, add, release []string) error
}

// Guard is an extra condition on writes, such as "this server is still the
// controller leader". Implementations compare an etcd key's create
// revision.
type Guard interface {
	// Key is the etcd key whose CreateRevision must equal Revision.
	Key() string
	Revision() int64
}

// CreateOptions tune Create.
type CreateOptions struct {
	// IdempotencyKey makes retried creates safe (header Idempotency-Key).
	IdempotencyKey string
	// RequestHash identifies the request body that used the key.
	RequestHash string
	// IdempotencyTTL is how long the key is remembered (default 24h).
	IdempotencyTTL time.Duration
	// TTL, when set, deletes the object after it (events).
	TTL time.Duration
	// Claims are unique keys (relative to /ouro/claims/, such as
	// "ip/<network-uid>/172.31.0.5") taken in the same transaction as the
	// object: each must be free, else Create fails with a *ClaimError
	// (ErrClaimTaken). Deleting the object releases them in its delete
	// transaction. Not allowed with TTL.
	Claims []string
	// FreeClaimPrefixes must each begin no claim key (relative to
	// /ouro/claims/) when the object is created, else Create fails with a
	// *ClaimError naming the prefix; they take nothing. With Claims they
	// let admission check a tree of keys in the create's transaction (a
	// VPC's subnets must not overlap, say).
	FreeClaimPrefixes []string
}

// ListOptions tune List.
type ListOptions struct {
	Selector api.Selector
	// Filter, when set, keeps only objects it returns true for (for example
	// instances on one host).
	Filter func(api.Object) bool
	// Limit is the page size; 0 means all.
	Limit int
	// Continue is the token from the previous page.
	Continue string
}

// Event is one change seen by Watch.
type Event struct {
	Type api.EventType
	// Object is the new state, or the last state for Deleted.
	Object api.Object
	// Revision is the etcd revision of the change.
	Revision int64
	// Err is set on the last event of a failed stream.
	Err error
}

// Presence tracks liveness with leased keys: a key stays while it is
// renewed within its TTL, whichever server renews it.
type Presence interface {
	// Renew keeps name alive for ttl from now, creating it if needed.
	Renew(ctx context.Context, name string, ttl time.Duration) error
	// Alive returns the names alive now and the revision read at.
	Alive(ctx context.Context) (map[string]bool, int64, error)
	// Watch streams changes after fromRev: Alive true when a name appears,
	// false when it expires or is removed.
	Watch(ctx context.Context, fromRev int64) (<-chan PresenceEvent, error)
	// Remove deletes name at once.
	Remove(ctx context.Context, name string) error
	// Suspect makes name expire within ttl unless it is renewed: for a
	// host whose agent was seen to go (its connection closed), sooner
	// than its heartbeat TTL. The next Renew gives it its full TTL again.
	// A name not alive, or expiring sooner already, is left alone.
	Suspect(ctx context.Context, name string, ttl time.Duration) error
}

// PresenceEvent is one change of a presence key.
type PresenceEvent struct {
	Name     string
	Alive    bool
	Revision int64
	Err      error
}
