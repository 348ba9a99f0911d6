package admission

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// Config configures an Admitter.
type Config struct {
	// Store is read for what instances refer to: projects, flavors,
	// images, key pairs, networks and security groups.
	Store store.Interface
	// IPAM allocates instance addresses and network VNIs; by default an
	// ipam.Allocator over Store.
	IPAM *ipam.Allocator
}

// Admitter admits instances and what they attach to. It keeps no state:
// everything it checks against is read from the store, so one Admitter
// serves every front end and every server of a cluster agrees.
type Admitter struct {
	st    store.Interface
	addrs *ipam.Allocator
}

// New returns an Admitter. It has no side effects.
func New(cfg Config) *Admitter {
	if cfg.IPAM == nil {
		cfg.IPAM = ipam.New(ipam.Config{Store: cfg.Store})
	}
	return &Admitter{st: cfg.Store, addrs: cfg.IPAM}
}

// CreateInstance admits and stores a new instance exactly as a create
// through the API does: the same metadata checks, validation and
// defaulting, the same address allocation and the same idempotency. It
// writes with st, which for a controller is the store guarded by its
// leadership, so a deposed leader cannot create. id is who asks.
//
// in carries metadata (name, project, labels) and spec; on success it
// holds the stored instance. existed is true when idempotencyKey was used
// before for the same request and in is the instance made then.
func (a *Admitter) CreateInstance(ctx context.Context, st store.Interface, id *auth.Identity, in *api.Instance, idempotencyKey string) (existed bool, err error) {
	m := &in.Metadata
	if e := api.ValidateName("metadata.name", m.Name); e != nil {
		return false, e
	}
	if e := api.ValidateName("metadata.project", m.Project); e != nil {
		return false, e
	}
	if e := api.ValidateMetaMaps(m); e != nil {
		return false, e
	}
	*m = api.ObjectMeta{Name: m.Name, Project: m.Project, Labels: m.Labels, Annotations: m.Annotations}
	in.Kind = api.InstanceKind.Name
	in.Status = api.InstanceStatus{}
	opts := store.CreateOptions{}
	if idempotencyKey != "" {
		opts.IdempotencyKey, opts.RequestHash = idempotencyKey, RequestHash(api.InstanceKind, m.Project, in)
	}
	if err := a.EnsureProject(ctx, m.Project); err != nil {
		return false, err
	}
	if err := a.ValidateInstanceCreate(ctx, id, in); err != nil {
		return false, err
	}
	existed, err = a.StoreInstance(ctx, st, in, opts)
	if err != nil {
		return false, fmt.Errorf("create instance %s: %w", m.Name, err)
	}
	return existed, nil
}

// StoreInstance stores an instance admitted by ValidateInstanceCreate,
// writing with st, with an address claimed on each of its networks in the
// same transaction (status.interfaces).
func (a *Admitter) StoreInstance(ctx context.Context, st store.Interface, in *api.Instance, opts store.CreateOptions) (bool, error) {
	opts.Claims = append(opts.Claims[:0:0], volumeClaims(in)...)
	existed, err := a.addrs.CreateInstance(ctx, st, in, opts)
	return existed, volumeInUse(in, err)
}

// EnsureProject answers 404 if a project does not exist.
func (a *Admitter) EnsureProject(ctx context.Context, project string) error {
	err := a.st.Get(ctx, api.ProjectKind, "", project, &api.Project{})
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound(api.ProjectKind.Name, project)
	}
	if err != nil {
		return fmt.Errorf("get project %s: %w", project, err)
	}
	return nil
}

// RequestHash identifies a create request for idempotency: the kind, the
// project and the canonical JSON of the object as asked for. A retried
// create with the same key and hash gets the object made the first time;
// the same key with another hash is refused.
func RequestHash(kind *api.Kind, project string, obj api.Object) string {
	b, _ := json.Marshal(obj) // API types always marshal
	h := sha256.New()
	h.Write([]byte(kind.Plural + "\x00" + project + "\x00"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// Immutable is the error for a change to a field that cannot change.
func Immutable(field string) error {
	return api.Invalid(field, "create a new object instead", "field is immutable")
}

// ValidateDescription checks a free-text description: at most 1024 bytes
// of UTF-8.
func ValidateDescription(field, d string) error {
	if len(d) > 1024 || !utf8.ValidString(d) {
		return api.Invalid(field, "use at most 1024 bytes of UTF-8", "description is not valid")
	}
	return nil
}

// checkIdentity refuses an admission nobody asked for.
func checkIdentity(id *auth.Identity) error {
	if id == nil {
		return errors.New("admission: no identity given")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// jsonEqual reports whether a and b encode to the same JSON, so that an
// empty list equals a missing one.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
