package agent

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/agent/endpoint"
	"github.com/ouroboros-cloud/ouro/agent/fence"
	"github.com/ouroboros-cloud/ouro/agent/health"
	"github.com/ouroboros-cloud/ouro/agent/hostnet"
	"github.com/ouroboros-cloud/ouro/agent/metaserver"
	"github.com/ouroboros-cloud/ouro/agent/usage"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/lbplane"
)

// The agent's jobs besides reconciling live in packages of their own,
// each behind the small interfaces it declares, and wire is the one
// place that connects them:
//
//	fence       stops group members when heartbeats fail   ◀ cache, fence.Record
//	health      probes instances, says Healthy              ◀ cache, hostnet.Ports; ▶ statusWrites
//	usage       samples CPU time                            ◀ cache; ▶ statusWrites
//	endpoint    logs, exec, console for the servers (mTLS)  ◀ endpointInstances, session
//	metaserver  instance metadata in each router namespace  ◀ Config.Network, cache
//	hostnet     applies the host's networks, records ports  ◀ Config.Network, session; ▶ metaserver, portQueue
//	lbplane     runs the host's load balancers              ◀ hostnet, Config.Network (namespaces, Announcer)
//	volumes     keeps the data of the host's volumes        ◀ Config.VolumeDir, session, blobs
//
// The constructors have no side effects; the parts act only once Run
// starts their loops.

// wire builds the agent's parts from its configuration and knobs. Run
// calls it once, before it starts anything.
func (a *Agent) wire() {
	writes := statusWrites{a}
	a.members = fence.NewRecord(a.cfg.DataDir)
	a.fence = fence.New(fence.Config{
		LeaseTTL:  a.cfg.LeaseTTL,
		Drivers:   a.cfg.Drivers,
		Instances: a.cache,
		Record:    a.members,
		Logger:    a.log,
	})
	a.health = health.New(health.Config{
		Instances: a.cache,
		Targets:   &a.ports,
		Reporter:  writes,
		Probe:     a.probe,
		Tick:      a.healthTick,
	})
	a.usage = usage.New(usage.Config{
		Interval:  a.cfg.UsageInterval,
		Instances: a.cache,
		Drivers:   a.cfg.Drivers,
		Writer:    writes,
		Logger:    a.log,
	})
	a.endpoint = endpoint.New(endpoint.Config{
		Instances: endpointInstances{a},
		Identity:  &a.sess,
		Reach:     &a.ports,
		Logger:    a.log,
	})
	plane, _ := a.cfg.Network.(metaserver.Plane)
	a.meta = metaserver.New(metaserver.Config{
		Plane:     plane,
		Instances: a.cache,
		Zone:      a.zone(),
		Logger:    a.log,
	})
	a.volumes = a.newVolumes()
	if a.cfg.Network != nil {
		a.network = hostnet.New(hostnet.Config{
			Plane:         a.cfg.Network,
			Host:          a.name(),
			API:           &a.sess,
			Ports:         &a.ports,
			Metadata:      a.meta,
			Queue:         portQueue{a},
			LoadBalancers: a.loadBalancers(),
			RetryDelay:    a.relistDelay,
			Logger:        a.log,
		})
	}
}

// loadBalancers returns the data plane of the host's load balancers, nil
// without Config.LoadBalancerDir. The network plane tells the underlay
// which host holds a VIP when it implements lbplane.Announcer.
func (a *Agent) loadBalancers() hostnet.LoadBalancers {
	if a.cfg.LoadBalancerDir == "" {
		return nil
	}
	var ann lbplane.Announcer
	if x, ok := a.cfg.Network.(lbplane.Announcer); ok {
		ann = x
	}
	return lbplane.New(lbplane.Config{
		Dir:       a.cfg.LoadBalancerDir,
		NetNSPath: a.cfg.Network.NetNSPath,
		Announcer: ann,
		Logger:    a.log,
	})
}

// portQueue queues the instances whose network ports changed: they may
// have waited for them.
type portQueue struct{ a *Agent }

// PortsChanged queues the assigned instances among uids.
func (q portQueue) PortsChanged(uids []string) {
	for _, uid := range uids {
		if inst, ok := q.a.cache.ByUID(uid); ok {
			q.a.queue.Add(instanceKey(inst))
		}
	}
}

// statusWrites writes the status of instances for the health checker
// and the usage sampler.
type statusWrites struct{ a *Agent }

// WriteHealth writes the status of uid so that it carries the health
// checker's verdict.
func (w statusWrites) WriteHealth(ctx context.Context, uid string) {
	a := w.a
	cur, ok := a.cache.ByUID(uid)
	if !ok {
		return
	}
	r := &instanceRun{a: a, inst: cur, gen: cur.Status.ObservedGeneration}
	changed, err := r.update(ctx, func(*api.InstanceStatus) {})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("write health", "instance", instanceKey(cur), "err", err)
			a.queue.Add(instanceKey(cur)) // its next reconcile writes it
		}
		return
	}
	if changed {
		c := api.FindCondition(r.inst.Status.Conditions, api.ConditionHealthy)
		if c != nil && c.Status {
			a.event(ctx, r.inst, api.EventNormal, "Healthy", c.Message)
		} else if c != nil {
			a.event(ctx, r.inst, api.EventWarning, "Unhealthy", c.Message)
		}
	}
}

// WriteUsage writes u into the status of inst, unless the instance is no
// longer running.
func (w statusWrites) WriteUsage(ctx context.Context, inst *api.Instance, u api.Usage) {
	r := &instanceRun{a: w.a, inst: inst, gen: inst.Status.ObservedGeneration}
	_, err := r.update(ctx, func(s *api.InstanceStatus) {
		if s.Phase == api.PhaseRunning {
			s.Usage = &u
		}
	})
	if err != nil && ctx.Err() == nil {
		w.a.log.Debug("write usage", "instance", instanceKey(inst), "err", err)
	}
}

// endpointInstances finds the instances of the host for the endpoint.
type endpointInstances struct{ a *Agent }

// Lookup returns the instance with uid assigned to this host and its
// driver.
func (e endpointInstances) Lookup(uid string) (*api.Instance, driver.Driver, *api.Error) {
	inst, ok := e.a.cache.ByUID(uid)
	if !ok {
		return nil, nil, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: fmt.Sprintf("no instance with uid %q on host %s", uid, e.a.name())}
	}
	d := e.a.cfg.Drivers.Get(inst.Status.Driver)
	if d == nil {
		return nil, nil, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %s is not provisioned on host %s yet", instanceKey(inst), e.a.name())}
	}
	return inst, d, nil
}

// unfence is called after a successful heartbeat that ends fencing.
func (a *Agent) unfence(ctx context.Context) {
	a.log.Info("heartbeat works again: fencing ends")
	a.restartFenced(ctx)
}

// restartFenced has the instances fencing stopped reconciled again
// (started if they are still assigned here and the control plane did not
// replace them), each with an event Fenced. Before the first successful
// list the cache knows none of those found through the group member
// record: they are kept for that list, which queues every assigned
// instance and calls restartFenced again if fencing has ended.
func (a *Agent) restartFenced(ctx context.Context) {
	for _, uid := range a.fence.Stopped() {
		inst, ok := a.cache.ByUID(uid)
		if !ok {
			if a.synced.Load() {
				a.fence.Forget(uid)
			}
			continue
		}
		if a.fence.Announce(uid) {
			a.event(ctx, inst, api.EventWarning, "Fenced", "the instance was stopped while its host could not renew its presence lease")
		}
		a.queue.Add(instanceKey(inst))
	}
}

// noteAssigned brings the group member record up to date with the cache's
// view of an instance the API just showed (a list or a watch event).
// Instances the cache does not hold as assigned (late copies of gone
// ones) are left to the reconciler.
func (a *Agent) noteAssigned(uid string) {
	inst, ok := a.cache.ByUID(uid)
	if !ok {
		return
	}
	if err := a.members.Note(inst); err != nil {
		a.log.Error("record group members for fencing", "instance", instanceKey(inst), "err", err)
	}
}

// forgetMember drops uid from the group member record once its driver
// instances are gone.
func (a *Agent) forgetMember(uid string) {
	if err := a.members.Remove(uid); err != nil {
		a.log.Error("record group members for fencing", "uid", uid, "err", err)
	}
}
