// Package group is the instance group controller: it keeps each group's
// desired number of members running, replaces members lost with their
// host or failed for good, rolls template changes out a few members at a
// time gated on health, and scales groups on their members' CPU use.
//
//	informers: groups, instances (label ouro.dev/group), hosts
//	   │ keys of the groups concerned
//	   ▼
//	queue ─▶ reconcile(group):
//	           wait until the cache shows this controller's last writes
//	           record a new revision if the template changed
//	           Judge members (current? available? host lost? failed?)
//	           desired (spec.count, or the autoscaler)
//	           Plan deletions and creations (rollout rules)
//	           rollout state machine, status ─▶ store (guarded)
//	           delete, then create members
//
// Members are instances named <group>-<n> with labels ouro.dev/group,
// ouro.dev/group-uid and ouro.dev/revision. They are created through the
// same admission (validation, defaults, address allocation) as an API
// create (InstanceCreator, package admission), under the controller's own
// identity and with an idempotency key, and written with the
// leader-guarded store like every controller write. docs/groups.md
// describes the model, the algorithms and the timings.
package group

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/record"
	"github.com/ouroboros-cloud/ouro/store"
)

// InstanceCreator creates an instance for id as POST .../instances does
// (validation, defaulting, addresses, idempotency), writing with st.
// An *admission.Admitter is one.
type InstanceCreator interface {
	CreateInstance(ctx context.Context, st store.Interface, id *auth.Identity, in *api.Instance, idempotencyKey string) (existed bool, err error)
}

// VolumeCreator is implemented by creators that also make the volumes of
// stateful members (spec.volumeTemplates); admission.Admitter does.
type VolumeCreator interface {
	// EnsureMemberVolume makes volume name of project from template t
	// unless it exists.
	EnsureMemberVolume(ctx context.Context, st store.Interface, project, name string, t api.VolumeTemplate) error
}

// identity is who the controller creates members as. Its name is not a
// valid user name, so no user can hold it.
var identity = &auth.Identity{User: "system:group-controller", ClusterAdmin: true}

// Options configure a Controller.
type Options struct {
	// Store is the (leader-guarded) store to write to.
	Store store.Interface
	// Groups, Instances and Hosts are informers run by the caller; New
	// registers handlers on them. LoadBalancers, when set, is one too: the
	// groups whose health check is of kind loadBalancer read member health
	// from it.
	Groups, Instances, Hosts, LoadBalancers *cache.Informer
	// Creator makes members.
	Creator  InstanceCreator
	Recorder record.Sink
	Logger   *slog.Logger
	// HostLostGrace is how long a member's host must be NotReady before
	// the member is replaced (default 0: NotReady itself means the host's
	// 6 s presence lease ran out).
	HostLostGrace time.Duration
	// Workers reconcile groups in parallel (default 4).
	Workers int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// memberRef is what the controller remembers of an instance of a group.
type memberRef struct {
	group, host string
}

// scaleState is the autoscaler's memory of one group.
type scaleState struct {
	uid     string
	history []Recommendation
}

// progressMark is the number of available current members last seen.
type progressMark struct {
	revision  int64
	available int
}

// Controller reconciles instance groups.
type Controller struct {
	o     Options
	log   *slog.Logger
	queue *queue.Queue[string]
	exp   *expectations

	mu        sync.Mutex
	owner     map[string]memberRef         // instance key → its group and host
	members   map[string]map[string]bool   // group key → instance keys
	onHost    map[string]map[string]int    // host → group key → members there
	hostPhase map[string]api.HostPhase     // host → phase last seen
	scale     map[string]*scaleState       // group key → autoscaler state
	progress  map[string]progressMark      // group key → rollout progress
	createErr map[string]string            // group key → last member create error
	warned    map[string]map[string]string // group key → event reason → last message
}

// New returns a controller and registers its handlers on the informers.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{
		o:         o,
		log:       o.Logger.With("controller", "group"),
		exp:       newExpectations(),
		owner:     map[string]memberRef{},
		members:   map[string]map[string]bool{},
		onHost:    map[string]map[string]int{},
		hostPhase: map[string]api.HostPhase{},
		scale:     map[string]*scaleState{},
		progress:  map[string]progressMark{},
		createErr: map[string]string{},
		warned:    map[string]map[string]string{},
	}
	c.queue = queue.New("group", c.reconcile, c.log).WithBackoff(50*time.Millisecond, 30*time.Second)
	o.Groups.AddHandler(c.queue.Add)
	o.Instances.AddHandler(c.instanceChanged)
	o.Hosts.AddHandler(c.hostChanged)
	if o.LoadBalancers != nil {
		o.LoadBalancers.AddHandler(c.loadBalancerChanged)
	}
	return c
}

// loadBalancerChanged queues the groups whose health check names the load
// balancer, and those it pools.
func (c *Controller) loadBalancerChanged(key string) {
	project, name := cache.SplitKey(key)
	pooled := map[string]bool{}
	if o, ok := c.o.LoadBalancers.Get(key); ok {
		for _, p := range o.(*api.LoadBalancer).Spec.Pools {
			pooled[p.Group] = p.Group != ""
		}
	}
	for _, o := range c.o.Groups.List() {
		g := o.(*api.InstanceGroup)
		hc := g.Spec.HealthCheck
		if g.Metadata.Project == project && (pooled[g.Metadata.Name] || hc.Kind == api.HealthLoadBalancer && hc.LoadBalancer == name) {
			c.queue.Add(cache.Key(g))
		}
	}
}

// loadBalancers returns every cached load balancer (none without an
// informer of them).
func (c *Controller) loadBalancers() []*api.LoadBalancer {
	if c.o.LoadBalancers == nil {
		return nil
	}
	var out []*api.LoadBalancer
	for _, o := range c.o.LoadBalancers.List() {
		out = append(out, o.(*api.LoadBalancer))
	}
	return out
}

// loadBalancer returns the cached load balancer g's health check names,
// or nil.
func (c *Controller) loadBalancer(g *api.InstanceGroup) *api.LoadBalancer {
	hc := g.Spec.HealthCheck
	if hc.Kind != api.HealthLoadBalancer || c.o.LoadBalancers == nil {
		return nil
	}
	o, ok := c.o.LoadBalancers.Get(g.Metadata.Project + "/" + hc.LoadBalancer)
	if !ok {
		return nil
	}
	return o.(*api.LoadBalancer)
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	ins := []*cache.Informer{c.o.Hosts, c.o.Instances, c.o.Groups}
	if c.o.LoadBalancers != nil {
		ins = append(ins, c.o.LoadBalancers)
	}
	for _, in := range ins {
		if err := in.WaitSynced(ctx); err != nil {
			return err
		}
	}
	c.queue.Run(ctx, c.o.Workers)
	return nil
}

// instanceChanged keeps the member indexes and queues the group (or
// groups, when the label changed) of the instance.
func (c *Controller) instanceChanged(key string) {
	var ref memberRef
	if obj, ok := c.o.Instances.Get(key); ok {
		in := obj.(*api.Instance)
		if g := in.Metadata.Labels[api.LabelGroup]; g != "" {
			ref = memberRef{group: in.Metadata.Project + "/" + g, host: in.Status.Host}
		}
	}
	c.mu.Lock()
	prev, had := c.owner[key]
	if had {
		delete(c.members[prev.group], key)
		if len(c.members[prev.group]) == 0 {
			delete(c.members, prev.group)
		}
		c.unrefHost(prev)
		delete(c.owner, key)
	}
	if ref.group != "" {
		c.owner[key] = ref
		if c.members[ref.group] == nil {
			c.members[ref.group] = map[string]bool{}
		}
		c.members[ref.group][key] = true
		if ref.host != "" {
			if c.onHost[ref.host] == nil {
				c.onHost[ref.host] = map[string]int{}
			}
			c.onHost[ref.host][ref.group]++
		}
	}
	c.mu.Unlock()
	if had && prev.group != ref.group {
		c.queue.Add(prev.group)
	}
	if ref.group != "" {
		c.queue.Add(ref.group)
	}
}

func (c *Controller) unrefHost(r memberRef) {
	if r.host == "" {
		return
	}
	if c.onHost[r.host][r.group]--; c.onHost[r.host][r.group] <= 0 {
		delete(c.onHost[r.host], r.group)
	}
	if len(c.onHost[r.host]) == 0 {
		delete(c.onHost, r.host)
	}
}

// hostChanged queues the groups with members on a host whose phase
// changed (or that is gone).
func (c *Controller) hostChanged(name string) {
	var phase api.HostPhase = "Gone"
	if obj, ok := c.o.Hosts.Get(name); ok {
		phase = obj.(*api.Host).Status.Phase
	}
	c.mu.Lock()
	prev, seen := c.hostPhase[name]
	c.hostPhase[name] = phase
	var groups []string
	if !seen || prev != phase {
		for g := range c.onHost[name] {
			groups = append(groups, g)
		}
	}
	c.mu.Unlock()
	for _, g := range groups {
		c.queue.Add(g)
	}
}

// indexed reports whether the member index holds instance as a member
// of group.
func (c *Controller) indexed(group, instance string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[group][instance]
}

// membersOf returns the cached instances labelled as members of the group.
func (c *Controller) membersOf(group string) []*api.Instance {
	c.mu.Lock()
	keys := make([]string, 0, len(c.members[group]))
	for k := range c.members[group] {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	out := make([]*api.Instance, 0, len(keys))
	for _, k := range keys {
		if obj, ok := c.o.Instances.Get(k); ok {
			out = append(out, obj.(*api.Instance))
		}
	}
	return out
}

// hostsOf returns the cached hosts the instances are placed on.
func (c *Controller) hostsOf(insts []*api.Instance) map[string]*api.Host {
	hosts := map[string]*api.Host{}
	for _, in := range insts {
		if h := in.Status.Host; h != "" {
			if obj, ok := c.o.Hosts.Get(h); ok {
				hosts[h] = obj.(*api.Host)
			}
		}
	}
	return hosts
}

// forget drops what the controller remembers of a deleted group.
func (c *Controller) forget(group string) {
	c.exp.forget(group)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.scale, group)
	delete(c.progress, group)
	delete(c.createErr, group)
	delete(c.warned, group)
}

// event records an event on the group.
func (c *Controller) event(g *api.InstanceGroup, typ, reason, format string, args ...any) {
	if c.o.Recorder != nil {
		c.o.Recorder.Event(context.Background(), g, typ, reason, format, args...)
	}
}

// warnOnce records a warning unless the last one of this reason said the
// same.
func (c *Controller) warnOnce(g *api.InstanceGroup, reason, msg string) {
	key := g.Metadata.Project + "/" + g.Metadata.Name
	c.mu.Lock()
	if c.warned[key] == nil {
		c.warned[key] = map[string]string{}
	}
	same := c.warned[key][reason] == msg
	c.warned[key][reason] = msg
	c.mu.Unlock()
	if !same {
		c.event(g, api.EventWarning, reason, "%s", msg)
	}
}
