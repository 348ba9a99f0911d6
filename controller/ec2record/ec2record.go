// Package ec2record keeps the EC2 API's records of deleted instances: an
// instance deleted any way but TerminateInstances (the REST API, ouro,
// the console, a group scaling in, a stack) still shows in
// DescribeInstances as terminated for an hour, as at AWS, so that
// `aws ec2 wait instance-terminated` and Terraform's delete waiter see
// the state whatever deleted it. The record is ec2.TerminatedRecord,
// written once: its name is the instance's EC2 id, and a record that
// exists already (TerminateInstances wrote it) is left alone.
//
// It runs on the controllers' leader, fed by the instance informer: an
// instance is recorded when it is first seen marked for deletion, or
// when it disappears without having been seen so (deleted at once, never
// placed).
package ec2record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/ec2"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/store"
)

// Options configures a Controller.
type Options struct {
	Store     store.Interface
	Instances *cache.Informer
	Hosts     *cache.Informer
	Logger    *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Controller writes the records.
type Controller struct {
	o      Options
	q      *queue.Queue[string]
	images *admission.Admitter // resolves instances' image references

	mu sync.Mutex
	// last is every instance's last state seen, by informer key: what a
	// deleted instance is recorded from.
	last map[string]*api.Instance
	// pending are the instances to record, by UID.
	pending map[string]*api.Instance
	// done are the UIDs recorded, with when: an instance is recorded
	// once, while its record lasts.
	done   map[string]time.Time
	pruned time.Time // when done was last pruned
}

// New returns a Controller.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{o: o, last: map[string]*api.Instance{}, pending: map[string]*api.Instance{}, done: map[string]time.Time{}}
	c.images = admission.New(admission.Config{Store: o.Store})
	c.q = queue.New("ec2record", c.record, o.Logger)
	o.Instances.AddHandler(c.observe)
	return c
}

// Run records deleted instances until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.o.Instances.WaitSynced(ctx); err != nil {
		return nil
	}
	c.q.Run(ctx, 1)
	return nil
}

// observe notes an instance's change; it queues the instance when it is
// being deleted or is gone.
func (c *Controller) observe(key string) {
	obj, ok := c.o.Instances.Get(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	var in *api.Instance
	if ok {
		in = obj.(*api.Instance)
		c.last[key] = in
		if in.Metadata.DeletionTimestamp == nil {
			return
		}
	} else {
		in = c.last[key]
		delete(c.last, key)
		if in == nil {
			return
		}
	}
	uid := in.Metadata.UID
	if _, ok := c.done[uid]; ok {
		return
	}
	c.pending[uid] = in
	c.q.Add(uid)
}

// record writes the record of the instance uid names.
func (c *Controller) record(ctx context.Context, uid string) (queue.Result, error) {
	c.mu.Lock()
	in := c.pending[uid]
	c.mu.Unlock()
	if in == nil {
		return queue.Result{}, nil
	}
	var host *api.Host
	if in.Status.Host != "" {
		if h, ok := c.o.Hosts.Get(in.Status.Host); ok {
			host = h.(*api.Host)
		}
	}
	img, err := c.image(ctx, in)
	if err != nil {
		return queue.Result{}, err
	}
	e := ec2.TerminatedRecord(in, img, host, c.o.Now(), "deleted: DescribeInstances shows it as terminated for an hour")
	_, err = c.o.Store.Create(ctx, e, store.CreateOptions{TTL: ec2.TerminatedFor})
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return queue.Result{}, fmt.Errorf("record deleted instance %s/%s: %w", in.Metadata.Project, in.Metadata.Name, err)
	}
	now := c.o.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, uid)
	c.done[uid] = now
	if now.Sub(c.pruned) > time.Minute {
		c.pruned = now
		for u, at := range c.done {
			if now.Sub(at) > ec2.TerminatedFor {
				delete(c.done, u)
			}
		}
	}
	return queue.Result{}, nil
}

// image is the instance's image as admission resolves its reference;
// nil when it has none, or it is gone or no longer resolves.
func (c *Controller) image(ctx context.Context, in *api.Instance) (*api.Image, error) {
	if in.Spec.Image == "" {
		return nil, nil
	}
	img, err := c.images.ResolveImage(ctx, in.Metadata.Project, in.Spec.Image)
	var ae *api.Error
	if errors.As(err, &ae) {
		return nil, nil
	}
	return img, err
}
