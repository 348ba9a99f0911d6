// Package stack is the stack controller: it keeps every Stack applied.
// For each stack it creates the objects the stack names one dependency
// level at a time, the objects of a level together, resolving the
// references between them as the objects they point to get their values;
// records what it owns in the stack's status before the creates (one
// write per level, each create with an idempotency key, so a crash never
// duplicates); compares what it owns with the stack on every pass and on
// every change of an owned object, reporting drift (status and an event)
// and, unless the stack says drift: report, putting it back; deletes in
// reverse dependency order what the stack no longer names, together
// whatever nothing left depends on; and, when the stack is deleted,
// deletes everything it owns the same way before it lets the stack go
// (FinalizerStack).
//
//	informers: stacks, owned kinds (networks, security groups, key pairs,
//	           images, flavors, instances, groups, floating IPs, LBs)
//	   │ keys of the stacks naming the object
//	   ▼
//	queue ─▶ reconcile(stack):
//	           deleting? delete owned objects in reverse order, then the finalizer
//	           the author's identity (current roles of spec.appliedBy)
//	           for each level of stack.Order: per resource resolve references,
//	             owned? create / diff → update / drift;
//	             status with the level's creates Pending ─▶ store;
//	             creates and updates together (≤16); results ─▶ store
//	           delete what the spec no longer names: rounds of the objects
//	             nothing left depends on, together (≤16)
//	           outputs, phase, status ─▶ store (guarded)
//
// Objects are created and updated through the API server's own paths
// (ObjectWriter: authorization, admission, defaults) as the stack's
// author, with the roles the author has now: a stack cannot create what
// its author could not. Owned objects carry api.LabelStack (and
// api.LabelStackProject when cluster-scoped); an object of the same name
// without it, or another stack's, is never touched.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

// ObjectWriter creates, updates and deletes objects for an identity
// exactly as the REST API does (authorization, admission, defaults,
// idempotency), writing with st. An *apiserver.Server is one.
type ObjectWriter interface {
	// CreateObject creates obj (kind, metadata name, project, labels,
	// spec); existed is true when key was used before for the same
	// request.
	CreateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object, key string) (existed bool, err error)
	// UpdateObject updates obj, read at its resourceVersion.
	UpdateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object) error
	// DeleteObject deletes an object; gone is false while it is only
	// marked for deletion (an instance terminating).
	DeleteObject(ctx context.Context, st store.Interface, id *auth.Identity, k *api.Kind, project, name string) (gone bool, err error)
}

// identity is who the controller deletes owned objects as: the stack's
// delete (or the change that dropped a resource) was authorized already,
// and a stack must be deletable after its author has gone. Its name is
// not a valid user name, so no user can hold it.
var identity = &auth.Identity{User: "system:stack-controller", ClusterAdmin: true}

// Timings.
const (
	// waitPoll is how soon a stack waiting on something (a reference, an
	// object being deleted) is looked at again, besides the watch events
	// that bring it back sooner.
	waitPoll = 2 * time.Second
	// failedRetry is how soon a failed stack is tried again: the cause
	// (a missing role, an object in the way) may have gone.
	failedRetry = 30 * time.Second
)

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// Stacks is the stacks' informer; Owned are the informers of the kinds
	// stacks can own (any subset: a change of an object of those kinds
	// queues the stacks naming it). The caller runs them.
	Stacks *cache.Informer
	Owned  []*cache.Informer
	// Writer writes owned objects as the API does.
	Writer   ObjectWriter
	Recorder record.Sink
	Logger   *slog.Logger
	// Workers reconcile stacks in parallel (default 2).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller reconciles stacks.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[string]
}

// New returns a controller and registers its handlers on the informers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{o: o, log: o.Logger.With("controller", "stack")}
	c.queue = queue.New("stack", c.reconcile, c.log).WithBackoff(100*time.Millisecond, 30*time.Second)
	o.Stacks.AddHandler(c.queue.Add)
	for _, in := range o.Owned {
		in.AddHandler(c.ownedChanged(in))
	}
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	for _, in := range append([]*cache.Informer{c.o.Stacks}, c.o.Owned...) {
		if err := in.WaitSynced(ctx); err != nil {
			return err
		}
	}
	c.queue.Run(ctx, c.o.Workers)
	return nil
}

// ownedChanged returns the handler of one owned kind's informer: it
// queues the stacks of the object's project that name it (or, for an
// instance, the group it is a member of). A deleted object is no longer
// in the cache, so stacks are found by the names they hold.
func (c *Controller) ownedChanged(in *cache.Informer) cache.Handler {
	return func(key string) {
		project, name := cache.SplitKey(key)
		kind := ""
		group := ""
		if obj, ok := in.Get(key); ok {
			kind = obj.GetKind().Name
			if inst, ok := obj.(*api.Instance); ok {
				group = inst.Metadata.Labels[api.LabelGroup]
			}
		}
		for _, o := range c.o.Stacks.List() {
			s := o.(*api.Stack)
			if project != "" && s.Metadata.Project != project {
				continue
			}
			if names(s, kind, name) || (group != "" && names(s, api.InstanceGroupKind.Name, group)) {
				c.queue.Add(cache.Key(s))
			}
		}
	}
}

// names reports whether the stack's spec or status names an object
// called name, of kind (any kind when "").
func names(s *api.Stack, kind, name string) bool {
	for _, r := range s.Spec.Resources {
		if r.Name == name && (kind == "" || r.Kind == kind) {
			return true
		}
	}
	for _, r := range s.Status.Resources {
		if r.Name == name && (kind == "" || r.Kind == kind) {
			return true
		}
	}
	return false
}

// authorIdentity returns the identity of the stack's author with the
// roles the User object gives now, or an error saying why the stack
// cannot act (nil identity and nil error never).
func (c *Controller) authorIdentity(ctx context.Context, s *api.Stack) (*auth.Identity, error) {
	name := s.Spec.AppliedBy
	if name == "" {
		return nil, errors.New("the stack has no author (spec.appliedBy)")
	}
	var u api.User
	if err := c.o.Store.Get(ctx, api.UserKind, "", name, &u); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("the stack's author, user %s, no longer exists", name)
		}
		return nil, fmt.Errorf("read user %s: %w", name, err)
	}
	return &auth.Identity{User: u.Metadata.Name, ClusterAdmin: u.Spec.ClusterAdmin, Roles: u.Spec.Roles}, nil
}
