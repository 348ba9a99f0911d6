package agent

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
)

// instanceCache is the agent's local map of the instances assigned to its
// host, by uid. Instances that stop being assigned (deleted, or moved
// while the agent was away) are kept as "gone" until the reconciler has
// removed them from the drivers.
//
// Stored objects are never modified; readers get copies.
type instanceCache struct {
	mu    sync.Mutex
	byUID map[string]*api.Instance
	byKey map[string]string // project/name → uid
	gone  map[string]*api.Instance
	// own holds, per uid, the fingerprints of the instances the agent
	// wrote or is writing, oldest first (see wrote and echo).
	own map[string][]string
}

// maxOwnWrites bounds the writes remembered per instance.
const maxOwnWrites = 8

func newInstanceCache() *instanceCache {
	return &instanceCache{byUID: map[string]*api.Instance{}, byKey: map[string]string{},
		gone: map[string]*api.Instance{}, own: map[string][]string{}}
}

// instanceKey is the work-queue key of an instance: "project/name".
func instanceKey(inst *api.Instance) string {
	return inst.Metadata.Project + "/" + inst.Metadata.Name
}

// cloneInstance returns a copy that can be changed without touching in,
// also by decoding JSON into it (which writes through pointers).
func cloneInstance(in *api.Instance) *api.Instance {
	out := *in
	out.Metadata.Labels = maps.Clone(in.Metadata.Labels)
	out.Metadata.DeletionTimestamp = clonePtr(in.Metadata.DeletionTimestamp)
	out.Metadata.Finalizers = slices.Clone(in.Metadata.Finalizers)
	out.Spec.Command = slices.Clone(in.Spec.Command)
	out.Spec.Env = slices.Clone(in.Spec.Env)
	out.Spec.Tolerations = slices.Clone(in.Spec.Tolerations)
	out.Spec.PublicKeys = slices.Clone(in.Spec.PublicKeys)
	out.Spec.Networks = slices.Clone(in.Spec.Networks)
	for i := range out.Spec.Networks {
		out.Spec.Networks[i].SecurityGroups = slices.Clone(in.Spec.Networks[i].SecurityGroups)
	}
	out.Spec.Placement = clonePtr(in.Spec.Placement)
	out.Spec.HealthCheck = clonePtr(in.Spec.HealthCheck)
	out.Status.Conditions = slices.Clone(in.Status.Conditions)
	out.Status.Interfaces = slices.Clone(in.Status.Interfaces)
	out.Status.StartedAt = clonePtr(in.Status.StartedAt)
	out.Status.FinishedAt = clonePtr(in.Status.FinishedAt)
	out.Status.ExitCode = clonePtr(in.Status.ExitCode)
	out.Status.NextRestartAt = clonePtr(in.Status.NextRestartAt)
	out.Status.Usage = clonePtr(in.Status.Usage)
	return &out
}

// clonePtr returns a pointer to a copy of *p, or nil.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// set stores inst unless the cache holds a newer version of it. An older
// instance of the same key but another uid becomes gone.
func (c *instanceCache) set(inst *api.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(inst)
}

func (c *instanceCache) setLocked(inst *api.Instance) {
	uid, key := inst.Metadata.UID, instanceKey(inst)
	if old, ok := c.byUID[uid]; ok && parseRV(old.Metadata.ResourceVersion) > parseRV(inst.Metadata.ResourceVersion) {
		return
	}
	if g, ok := c.gone[uid]; ok && parseRV(g.Metadata.ResourceVersion) >= parseRV(inst.Metadata.ResourceVersion) {
		return // a late copy of an instance that is gone since
	}
	if prev, ok := c.byKey[key]; ok && prev != uid {
		c.gone[prev] = c.byUID[prev]
		delete(c.byUID, prev)
		delete(c.own, prev)
	}
	delete(c.gone, uid)
	c.byUID[uid] = cloneInstance(inst)
	c.byKey[key] = uid
}

// refresh stores a newer version of an instance that is assigned (the
// answer to a status write); it never brings back a gone instance.
func (c *instanceCache) refresh(inst *api.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byUID[inst.Metadata.UID]; ok {
		c.setLocked(inst)
	}
}

// wrote remembers that the agent wrote inst (or is about to: the echo of
// a write may come before its answer), so that echo recognises it.
func (c *instanceCache) wrote(inst *api.Instance) {
	fp, ok := fingerprint(inst)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := inst.Metadata.UID
	fps := c.own[uid]
	if len(fps) > 0 && fps[len(fps)-1] == fp {
		return
	}
	if len(fps) >= maxOwnWrites {
		fps = slices.Delete(fps, 0, len(fps)-maxOwnWrites+1)
	}
	c.own[uid] = append(fps, fp)
}

// echo reports whether inst, as a watch event brought it, is one of the
// agent's own status writes coming back: the reconcile that wrote it knew
// all of it, so it is no reason to reconcile again. An own write that
// comes back is forgotten with the ones before it (the watch delivers
// them in order).
//
// Only writes count, not what the cache holds: after a conflict the
// cache holds a version read afresh that no reconcile acted on yet.
func (c *instanceCache) echo(inst *api.Instance) bool {
	fp, ok := fingerprint(inst)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := inst.Metadata.UID
	fps := c.own[uid]
	for i := len(fps) - 1; i >= 0; i-- {
		if fps[i] == fp {
			if rest := fps[i+1:]; len(rest) > 0 {
				c.own[uid] = slices.Clone(rest)
			} else {
				delete(c.own, uid)
			}
			return true
		}
	}
	return false
}

// fingerprint is the JSON form of inst without its resourceVersion: two
// versions with the same fingerprint differ in nothing the reconciler
// reads.
func fingerprint(inst *api.Instance) (string, bool) {
	cp := *inst
	cp.Metadata.ResourceVersion = ""
	b, err := json.Marshal(&cp)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// remove marks an instance gone.
func (c *instanceCache) remove(inst *api.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := inst.Metadata.UID
	old, ok := c.byUID[uid]
	if !ok || parseRV(inst.Metadata.ResourceVersion) > parseRV(old.Metadata.ResourceVersion) {
		old = cloneInstance(inst)
	}
	delete(c.byUID, uid)
	delete(c.own, uid)
	if c.byKey[instanceKey(old)] == uid {
		delete(c.byKey, instanceKey(old))
	}
	c.gone[uid] = old
}

// replace makes items the whole set of assigned instances (after a
// successful list) and returns the keys of every instance it touched,
// gone ones included.
func (c *instanceCache) replace(items []api.Instance) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	listed := make(map[string]bool, len(items))
	var keys []string
	for i := range items {
		listed[items[i].Metadata.UID] = true
		delete(c.gone, items[i].Metadata.UID) // the list is newer than any removal seen
		c.setLocked(&items[i])
		keys = append(keys, instanceKey(&items[i]))
	}
	for uid, inst := range c.byUID {
		if listed[uid] {
			continue
		}
		delete(c.byUID, uid)
		delete(c.own, uid)
		if c.byKey[instanceKey(inst)] == uid {
			delete(c.byKey, instanceKey(inst))
		}
		c.gone[uid] = inst
		keys = append(keys, instanceKey(inst))
	}
	return keys
}

// get returns a copy of the instance of key (nil if none) and the gone
// instances of that key.
func (c *instanceCache) get(key string) (cur *api.Instance, gone []*api.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if uid, ok := c.byKey[key]; ok {
		cur = cloneInstance(c.byUID[uid])
	}
	for _, g := range c.gone {
		if instanceKey(g) == key {
			gone = append(gone, cloneInstance(g))
		}
	}
	return cur, gone
}

// ByUID returns a copy of the assigned instance with that uid.
func (c *instanceCache) ByUID(uid string) (*api.Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inst, ok := c.byUID[uid]
	if !ok {
		return nil, false
	}
	return cloneInstance(inst), true
}

// forget drops a gone instance once the drivers no longer have it.
func (c *instanceCache) forget(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.gone, uid)
}

// assigned reports whether uid is an instance the host keeps: assigned,
// or gone but not yet cleaned up.
func (c *instanceCache) assigned(uid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byUID[uid]
	_, g := c.gone[uid]
	return ok || g
}

// All returns copies of the assigned instances.
func (c *instanceCache) All() []*api.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*api.Instance, 0, len(c.byUID))
	for _, inst := range c.byUID {
		out = append(out, cloneInstance(inst))
	}
	return out
}

// usesVolume reports whether an instance assigned to the host, other
// than uid, names volume name of project in its spec.
func (c *instanceCache) usesVolume(project, name, uid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for u, in := range c.byUID {
		if u == uid || in.Metadata.Project != project || in.Metadata.DeletionTimestamp != nil {
			continue
		}
		for _, iv := range in.Spec.Volumes {
			if iv.Name == name {
				return true
			}
		}
	}
	return false
}
