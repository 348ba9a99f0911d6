package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/fence"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/driver"
)

// list reads every instance assigned to the host, replaces the local map
// with them and queues them all. It returns the list's resourceVersion.
func (a *Agent) list(ctx context.Context) (string, error) {
	items, meta, err := client.ListAll[api.Instance](ctx, a.sess.Client(), api.InstanceKind, "", client.ListOptions{Host: a.name()})
	if err != nil {
		return "", err
	}
	for _, key := range a.cache.replace(items) {
		a.queue.Add(key)
	}
	for i := range items {
		a.noteAssigned(items[i].Metadata.UID)
	}
	return meta.ResourceVersion, nil
}

// initialSync lists the assigned instances (retrying until it succeeds)
// before any reconcile runs, then deletes driver instances no assigned
// instance owns. It returns the list's resourceVersion, and false if ctx
// ended first.
func (a *Agent) initialSync(ctx context.Context) (string, bool) {
	for delay := a.relistDelay; ; delay = min(2*delay, 30*time.Second) {
		rv, err := a.list(ctx)
		if err == nil {
			a.collectOrphans(ctx)
			a.synced.Store(true)
			if !a.fence.Active() {
				// Heartbeats came back before this list: restart what
				// fencing stopped and the list still assigns here.
				a.restartFenced(ctx)
			}
			return rv, true
		}
		if ctx.Err() != nil {
			return "", false
		}
		a.log.Warn("list assigned instances", "err", err, "retry_in", delay)
		if !sleepCtx(ctx, delay) {
			return "", false
		}
	}
}

// collectOrphans deletes driver instances whose uid no instance assigned
// to this host has, according to the list that just succeeded: they were
// deleted or moved while the agent was away. Then it drops from the group
// member record the members that are not assigned here and that no
// driver holds any more.
func (a *Agent) collectOrphans(ctx context.Context) {
	unlisted := map[string]bool{}        // drivers whose List failed
	left := map[string]map[string]bool{} // driver → orphans it still holds
	for _, name := range a.cfg.Drivers.Names() {
		d := a.cfg.Drivers.Get(name)
		ids, err := d.List(ctx)
		if err != nil {
			a.log.Warn("list driver instances", "driver", name, "err", err)
			unlisted[name] = true
			continue
		}
		left[name] = map[string]bool{}
		for _, id := range ids {
			if a.cache.assigned(id) {
				continue
			}
			if err := d.Delete(ctx, id); err != nil {
				a.log.Warn("delete orphaned instance", "driver", name, "uid", id, "err", err)
				left[name][id] = true
				continue
			}
			a.log.Info("deleted orphaned instance: no instance on this host has its uid", "driver", name, "uid", id)
		}
	}
	dropped, err := a.members.Retain(func(m fence.Member) bool {
		return a.cache.assigned(m.UID) || unlisted[m.Driver] || left[m.Driver][m.UID]
	})
	for _, m := range dropped {
		a.fence.Forget(m.UID)
		a.log.Info("group member no longer on this host", "instance", m.Instance, "uid", m.UID, "driver", m.Driver)
	}
	if err != nil {
		a.log.Error("record group members for fencing", "err", err)
	}
}

// watchLoop follows the instances assigned to the host, resuming from the
// last resourceVersion. A Gone error or a broken stream makes it list
// again; a stream the server ended cleanly is resumed.
func (a *Agent) watchLoop(ctx context.Context, rv string) {
	relist := false
	delay := a.relistDelay
	for ctx.Err() == nil {
		if relist {
			v, err := a.list(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("list assigned instances", "err", err, "retry_in", delay)
				sleepCtx(ctx, delay)
				delay = min(2*delay, 30*time.Second)
				continue
			}
			rv, relist = v, false
			// Whatever went while the watch was broken (deleted by the
			// control plane meanwhile) leaves the host too.
			a.collectOrphans(ctx)
		}
		received := false
		err := client.Watch(ctx, a.sess.Client(), api.InstanceKind, "", client.WatchOptions{
			ListOptions:     client.ListOptions{Host: a.name()},
			ResourceVersion: rv,
		}, func(ev api.WatchEvent[api.Instance]) error {
			received = true
			if v := ev.Object.Metadata.ResourceVersion; v != "" {
				rv = v
			}
			switch ev.Type {
			case api.Added, api.Modified:
				if ev.Object.Status.Host != "" && ev.Object.Status.Host != a.name() {
					a.cache.remove(&ev.Object)
				} else {
					a.cache.set(&ev.Object)
					a.noteAssigned(ev.Object.Metadata.UID)
				}
				a.queue.Add(instanceKey(&ev.Object))
			case api.Deleted:
				a.cache.remove(&ev.Object)
				a.queue.Add(instanceKey(&ev.Object))
			}
			return nil
		})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			// The server ended the stream; resume from rv.
		default:
			if received {
				delay = a.relistDelay
			}
			var apiErr *api.Error
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusGone {
				a.log.Info("watch expired; listing again")
			} else {
				a.log.Warn("watch broke; listing again", "err", err, "in", delay)
				sleepCtx(ctx, delay)
				delay = min(2*delay, 30*time.Second)
			}
			relist = true
		}
	}
}

// exitLoop inspects, every exitCheckInterval, the instances reported
// Running and queues those whose process is no longer running.
func (a *Agent) exitLoop(ctx context.Context) {
	t := time.NewTicker(a.exitCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, inst := range a.cache.All() {
			if inst.Status.Phase != api.PhaseRunning || inst.Metadata.DeletionTimestamp != nil {
				continue
			}
			d := a.cfg.Drivers.Get(inst.Status.Driver)
			if d == nil {
				continue
			}
			st, err := d.Inspect(ctx, inst.Metadata.UID)
			if err != nil || st.State != driver.StateRunning {
				a.queue.Add(instanceKey(inst))
			}
		}
	}
}
