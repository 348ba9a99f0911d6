package group

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/cache"
	"github.com/ouroboros-cloud/ouro/queue"
	"github.com/ouroboros-cloud/ouro/store"
)

// Member event reasons, recorded on the group.
const (
	EventMemberCreated      = "MemberCreated"
	EventMemberDeleted      = "MemberDeleted"
	EventMemberReplaced     = "MemberReplaced"
	EventMemberCreateFailed = "MemberCreateFailed"
	EventNameTaken          = "MemberNameTaken"
)

// expectPoll is how soon a group waiting for the cache is looked at again
// (the cache's events usually wake it sooner).
const expectPoll = 100 * time.Millisecond

// scaleDecision is an autoscaler change of the desired count.
type scaleDecision struct {
	from, to int
	cpu      CPU
	target   int
	history  []Recommendation
}

// reconcile converges one group. It asks to be called again when the
// cache has yet to show its writes, or when time alone may change the
// group's plan.
func (c *Controller) reconcile(ctx context.Context, key string) (queue.Result, error) {
	now := c.o.Now()
	if !c.exp.satisfied(key, c.o.Instances, func(instance string) bool { return c.indexed(key, instance) }, now) {
		return queue.Result{RequeueAfter: expectPoll}, nil
	}
	insts := c.membersOf(key)
	obj, ok := c.o.Groups.Get(key)
	if !ok {
		return queue.Result{}, c.deleteOrphans(ctx, key, insts, now)
	}
	g, err := cache.Copy(obj.(*api.InstanceGroup))
	if err != nil {
		return queue.Result{}, err
	}
	revs, rev, newRev := NextRevisions(g, now)
	members := Judge(g, insts, revisionTemplates(revs), c.hostsOf(insts), c.o.HostLostGrace, now)
	lbWake := ApplyLBHealth(g, members, c.loadBalancer(g), now)
	ApplyPoolGate(g, members, c.loadBalancers())
	desired, scale := c.desired(key, g, members, now)

	curAvail, blocker := c.currentAvailability(key, g, members, rev)
	c.mu.Lock()
	mark, marked := c.progress[key]
	c.mu.Unlock()
	ro := NextRollout(RolloutInput{
		Prev: g.Status, NewRevision: newRev, Revision: rev, Paused: g.Spec.Paused,
		Old:              count(members, func(m *Member) bool { return m.Live() && !m.Current }),
		CurrentAvailable: curAvail, Desired: desired,
		Progressed: marked && mark.revision == rev && curAvail > mark.available,
		Deadline:   g.Spec.Update.ProgressDeadline(), Now: now, Blocker: blocker,
	})
	next := c.buildStatus(key, g, members, revs, rev, desired, ro, scale, now)
	// A rollout past its deadline stops in this very pass.
	pause := ro.PauseSpec && !g.Spec.Paused
	if pause {
		g.Spec.Paused = true
		g.Metadata.Generation++
		next.ObservedGeneration = g.Metadata.Generation
	}
	step := Plan(g, members, desired, c.takenOutside(g.Metadata.Project, insts))

	// The status goes first: it carries the addresses of stateful members
	// before any of them is deleted, and a write refused because the group
	// changed stops the pass before it acts on a stale spec.
	if pause || !jsonEqual(g.Status, next) {
		g.Status = next
		if err := c.o.Store.Update(ctx, g); err != nil {
			if errors.Is(err, store.ErrGuardFailed) || errors.Is(err, store.ErrNotFound) {
				return queue.Result{}, nil
			}
			return queue.Result{}, fmt.Errorf("update group %s: %w", key, err)
		}
	}
	c.mu.Lock()
	c.progress[key] = progressMark{revision: rev, available: curAvail}
	if scale != nil {
		c.scale[key].history = scale.history
	}
	c.mu.Unlock()
	for _, e := range ro.Events {
		c.event(g, e.Type, e.Reason, "%s", e.Message)
	}
	if scale != nil && scale.from != scale.to {
		reason, verb := EventScaledOut, "out"
		if scale.to < scale.from {
			reason, verb = EventScaledIn, "in"
		}
		c.event(g, api.EventNormal, reason, "scaled %s from %d to %d members: mean CPU %.1f%% over %d of %d running members, target %d%%",
			verb, scale.from, scale.to, scale.cpu.Mean, scale.cpu.Samples, scale.cpu.Running, scale.target)
	}

	poll, errs := c.act(ctx, key, g, rev, step, now)
	c.syncHealthChecks(ctx, key, g, members, now)
	after := recheckAfter(g, ro, c.o.HostLostGrace)
	if lbWake > 0 && (after == 0 || lbWake < after) {
		after = lbWake
	}
	if poll && (after == 0 || expectPoll < after) {
		after = expectPoll
	}
	return queue.Result{RequeueAfter: after}, errors.Join(errs...)
}

// act deletes and then creates members as step says. poll reports that
// the group should be looked at again soon, when the cache has caught up.
func (c *Controller) act(ctx context.Context, key string, g *api.InstanceGroup, rev int64, step Step, now time.Time) (poll bool, errs []error) {
	for _, d := range step.Delete {
		if err := c.deleteMember(ctx, key, d.Member, now); err != nil {
			errs = append(errs, err)
			continue
		}
		c.deletedEvent(g, d, rev)
	}
	for _, name := range step.Blocked {
		c.warnOnce(g, EventNameTaken, fmt.Sprintf("member %s cannot be made: an instance outside the group has its name", name))
	}
	for _, cr := range step.Create {
		again, err := c.createMember(ctx, key, g, rev, cr, now)
		if err != nil {
			errs = append(errs, err)
		}
		poll = poll || again
	}
	return poll, errs
}

// deletedEvent records why a member went.
func (c *Controller) deletedEvent(g *api.InstanceGroup, d Deletion, rev int64) {
	m, name := d.Member, d.Member.Name()
	switch {
	case d.Why == WhyOrphan:
		c.event(g, api.EventNormal, EventMemberDeleted, "deleted %s: it belongs to an earlier group of this name", name)
	case m.Deleting:
		c.event(g, api.EventNormal, EventMemberDeleted, "removed %s: its host %s is lost", name, m.Inst.Status.Host)
	case d.Why == WhyHostLost:
		c.event(g, api.EventWarning, EventMemberReplaced, "replacing %s (%s): its host %s is lost", name, WhyHostLost, m.Inst.Status.Host)
	case d.Why == WhyFailed:
		c.event(g, api.EventWarning, EventMemberReplaced, "replacing %s (%s): %s and its restart policy is Never", name, WhyFailed, unhealthyMessage(m))
	case d.Why == WhyUnhealthy:
		c.event(g, api.EventWarning, EventMemberReplaced, "replacing %s (%s): %s", name, WhyUnhealthy, unhealthyMessage(m))
	case d.Why == WhyRollout:
		c.event(g, api.EventNormal, EventMemberDeleted, "deleted %s: rolling out revision %d", name, rev)
	default:
		c.event(g, api.EventNormal, EventMemberDeleted, "deleted %s: scaling in", name)
	}
}

// deleteMember deletes a member as DELETE .../instances/{name} does: an
// instance never placed goes at once; a placed one is marked for its
// agent to tear down. A member whose host is lost is removed at once
// (its addresses are freed with it): the host's lease expired, so its
// agent, if alive, has fenced the member, and removes what is left when
// it sees the instance gone.
func (c *Controller) deleteMember(ctx context.Context, key string, m *Member, now time.Time) error {
	in := m.Inst
	meta := in.Metadata
	ikey := meta.Project + "/" + meta.Name
	if in.Status.Host == "" || m.HostDown {
		err := c.o.Store.Delete(ctx, api.InstanceKind, meta.Project, meta.Name, meta.ResourceVersion)
		switch {
		case err == nil || errors.Is(err, store.ErrNotFound):
			c.exp.deleted(key, ikey, meta.UID, now)
			return nil
		case errors.Is(err, store.ErrGuardFailed):
			return nil
		}
		return fmt.Errorf("delete member %s: %w", ikey, err)
	}
	if m.Deleting {
		return nil
	}
	cp, err := cache.Copy(in)
	if err != nil {
		return err
	}
	t := now.UTC()
	cp.Metadata.DeletionTimestamp = &t
	if cp.Status.Phase != api.PhaseTerminated {
		cp.Status.Phase = api.PhaseTerminating
	}
	return c.update(ctx, key, cp, now, "mark member for deletion")
}

// update writes an instance and expects to see the write in the cache.
func (c *Controller) update(ctx context.Context, key string, in *api.Instance, now time.Time, what string) error {
	ikey := in.Metadata.Project + "/" + in.Metadata.Name
	err := c.o.Store.Update(ctx, in)
	switch {
	case err == nil:
		c.exp.wrote(key, ikey, revisionOf(in), now)
		return nil
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGuardFailed):
		return nil
	}
	return fmt.Errorf("%s %s: %w", what, ikey, err)
}

// createMember makes member cr of g from revision rev. poll reports that
// the name was taken meanwhile, so the group needs another look once the
// cache shows by whom.
func (c *Controller) createMember(ctx context.Context, key string, g *api.InstanceGroup, rev int64, cr Creation, now time.Time) (poll bool, err error) {
	name := g.MemberName(cr.Index)
	labels := map[string]string{}
	for k, v := range g.Spec.Template.Labels {
		labels[k] = v
	}
	labels[api.LabelGroup] = g.Metadata.Name
	labels[api.LabelGroupUID] = g.Metadata.UID
	labels[api.LabelRevision] = strconv.FormatInt(rev, 10)
	in := &api.Instance{
		Kind:     api.InstanceKind.Name,
		Metadata: api.ObjectMeta{Name: name, Project: g.Metadata.Project, Labels: labels},
		Spec:     g.MemberSpec(),
	}
	for i := range in.Spec.Networks {
		if i < len(cr.Addresses) {
			in.Spec.Networks[i].IP = cr.Addresses[i]
		}
	}
	if err := c.memberVolumes(ctx, g, in); err != nil {
		msg := fmt.Sprintf("cannot make the volumes of member %s: %v", name, err)
		c.warnOnce(g, EventMemberCreateFailed, msg)
		return false, errors.New(msg)
	}
	// The cache revision tells this decision from an earlier one that made
	// (and deleted) a member of the same name and revision: a key reused
	// for it would be answered with the deleted instance.
	idem := idempotencyKey(g.Metadata.UID, name, rev, c.o.Instances.Revision())
	_, err = c.o.Creator.CreateInstance(ctx, c.o.Store, identity, in, idem)
	switch {
	case err == nil:
		c.exp.wrote(key, g.Metadata.Project+"/"+name, revisionOf(in), now)
		c.mu.Lock()
		delete(c.createErr, key)
		c.mu.Unlock()
		c.event(g, api.EventNormal, EventMemberCreated, "created %s (revision %d)", name, rev)
		return false, nil
	case errors.Is(err, store.ErrGuardFailed):
		return false, nil
	case errors.Is(err, store.ErrAlreadyExists):
		// Made meanwhile (by this controller, the cache will show it) or
		// by someone else (the next plan skips the name).
		return true, nil
	}
	msg := fmt.Sprintf("cannot create member %s: %v", name, err)
	c.mu.Lock()
	c.createErr[key] = msg
	c.mu.Unlock()
	var ae *api.Error
	if errors.As(err, &ae) {
		c.warnOnce(g, EventMemberCreateFailed, msg)
	}
	return false, errors.New(msg)
}

// idempotencyKey derives a member create's Idempotency-Key.
func idempotencyKey(groupUID, name string, rev, cacheRev int64) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d", groupUID, name, rev, cacheRev)))
	return "group-" + hex.EncodeToString(sum[:])
}

// syncHealthChecks gives live members the group's health check when it
// changed: a new check applies in place, without a rollout.
func (c *Controller) syncHealthChecks(ctx context.Context, key string, g *api.InstanceGroup, members []*Member, now time.Time) {
	want := g.MemberSpec().HealthCheck
	for _, m := range members {
		if !m.Live() || jsonEqual(m.Inst.Spec.HealthCheck, want) {
			continue
		}
		cp, err := cache.Copy(m.Inst)
		if err != nil {
			continue
		}
		cp.Spec.HealthCheck = want
		cp.Metadata.Generation++
		if err := c.update(ctx, key, cp, now, "set the health check of member"); err != nil {
			c.log.Warn("health check not updated", "group", key, "err", err)
		}
	}
}

// deleteOrphans deletes the members of a group that no longer exists.
func (c *Controller) deleteOrphans(ctx context.Context, key string, insts []*api.Instance, now time.Time) error {
	if len(insts) == 0 {
		c.forget(key)
		return nil
	}
	hosts := c.hostsOf(insts)
	var errs []error
	for _, in := range insts {
		m := &Member{Inst: in, Deleting: in.Metadata.DeletionTimestamp != nil,
			HostDown: in.Status.Host != "" && hostDown(hosts[in.Status.Host], c.o.HostLostGrace, now)}
		if m.Deleting && !m.HostDown {
			continue
		}
		if err := c.deleteMember(ctx, key, m, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// takenOutside reports whether a name is used by an instance of the
// project that is not one of insts.
func (c *Controller) takenOutside(project string, insts []*api.Instance) func(string) bool {
	mine := map[string]bool{}
	for _, in := range insts {
		mine[in.Metadata.Name] = true
	}
	return func(name string) bool {
		_, ok := c.o.Instances.Get(project + "/" + name)
		return ok && !mine[name]
	}
}

// desired returns the count the group works toward: spec.count, or with
// autoscaling the autoscaler's count (kept in status.desired, starting
// from spec.count) and its decision, if it changed anything.
func (c *Controller) desired(key string, g *api.InstanceGroup, members []*Member, now time.Time) (int, *scaleDecision) {
	a := g.Spec.Autoscaling
	if a == nil {
		return g.Spec.Count, nil
	}
	cur := g.Status.Desired
	if g.Status.ObservedGeneration == 0 {
		cur = g.Spec.Count
	}
	cur = min(max(cur, a.Min), a.Max)
	c.mu.Lock()
	st := c.scale[key]
	if st == nil || st.uid != g.Metadata.UID {
		// A new leader starts with the current count as the window's
		// only recommendation: it scales in no sooner than a full window
		// after it took over.
		st = &scaleState{uid: g.Metadata.UID, history: []Recommendation{{At: now, Count: cur}}}
		c.scale[key] = st
	}
	history := st.history
	c.mu.Unlock()
	cpu := MeasureCPU(members, now)
	rec, ok := Recommend(cpu, *a)
	if !ok {
		return cur, nil
	}
	next, kept := Scale(cur, rec, now, g.Status.LastScaleTime, history, a.Stabilization())
	return next, &scaleDecision{from: cur, to: next, cpu: cpu, target: a.TargetCPUPercent, history: kept}
}

// currentAvailability counts the available members of the current
// template and describes the first current one that is not available.
func (c *Controller) currentAvailability(key string, g *api.InstanceGroup, members []*Member, rev int64) (int, string) {
	n, blocker := 0, ""
	for _, m := range members {
		if !m.Live() || !m.Current {
			continue
		}
		if m.Available {
			n++
		} else if blocker == "" {
			blocker = m.Name() + " not healthy: " + unhealthyMessage(m)
		}
	}
	if blocker == "" {
		c.mu.Lock()
		blocker = c.createErr[key]
		c.mu.Unlock()
	}
	if blocker == "" {
		blocker = fmt.Sprintf("no member of revision %d became available", rev)
	}
	return n, blocker
}

// buildStatus computes the group's status.
func (c *Controller) buildStatus(key string, g *api.InstanceGroup, members []*Member, revs []api.GroupRevision, rev int64,
	desired int, ro RolloutOutput, scale *scaleDecision, now time.Time) api.InstanceGroupStatus {
	st := api.InstanceGroupStatus{
		ObservedGeneration:  g.Metadata.Generation,
		Desired:             desired,
		Revision:            rev,
		Revisions:           revs,
		Rollout:             ro.State,
		RolloutReason:       ro.Reason,
		RolloutProgressTime: ro.ProgressTime,
		LastScaleTime:       g.Status.LastScaleTime,
		Conditions:          append([]api.Condition(nil), g.Status.Conditions...),
	}
	if scale != nil && scale.from != scale.to {
		t := now.UTC()
		st.LastScaleTime = &t
	}
	for _, m := range members {
		if m.Deleting || m.Orphan {
			continue
		}
		st.Members++
		if m.Inst.Status.Phase == api.PhaseRunning && !m.HostDown {
			st.Running++
		}
		if m.Available {
			st.Healthy++
		}
		if m.Live() && m.Current {
			st.Updated++
		}
	}
	ready := api.Condition{Type: api.ConditionReady, Status: st.Healthy >= desired, Reason: "MembersAvailable",
		Message: fmt.Sprintf("%d of %d members available", st.Healthy, desired)}
	if !ready.Status {
		ready.Reason = "MembersUnavailable"
		c.mu.Lock()
		if e := c.createErr[key]; e != "" {
			ready.Reason, ready.Message = "CreateFailed", e
		}
		c.mu.Unlock()
	}
	st.Conditions = api.SetCondition(st.Conditions, ready, now.UTC())
	if g.Spec.Stateful {
		st.MemberAddresses = memberAddresses(g, members, desired)
	}
	return st
}

// memberAddresses keeps the addresses of stateful members 0 … desired-1:
// those the members have now, else those remembered.
func memberAddresses(g *api.InstanceGroup, members []*Member, desired int) map[string][]string {
	out := map[string][]string{}
	for name, a := range g.Status.MemberAddresses {
		if i := memberIndex(g.Metadata.Name, name); i >= 0 && i < desired {
			out[name] = a
		}
	}
	for _, m := range members {
		if m.Orphan || m.Index >= desired || len(m.Inst.Status.Interfaces) == 0 {
			continue
		}
		ips := make([]string, len(m.Inst.Status.Interfaces))
		for i, itf := range m.Inst.Status.Interfaces {
			ips[i] = itf.IP
		}
		out[m.Name()] = ips
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// recheckAfter is how soon time alone may change the plan of g (0: never):
// the rollout deadline, the autoscaler's intervals, the host grace.
func recheckAfter(g *api.InstanceGroup, ro RolloutOutput, hostLostGrace time.Duration) time.Duration {
	var after time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (after == 0 || d < after) {
			after = d
		}
	}
	soonest(ro.Recheck)
	if g.Spec.Autoscaling != nil {
		soonest(ScaleOutInterval)
	}
	soonest(hostLostGrace)
	return after
}

func revisionOf(obj api.Object) int64 {
	n, _ := strconv.ParseInt(obj.Meta().ResourceVersion, 10, 64)
	return n
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// memberVolumes makes (or finds again) the volumes of a stateful member
// from the group's volume templates and puts them in its spec: a
// replaced member gets its own volumes back by name.
func (c *Controller) memberVolumes(ctx context.Context, g *api.InstanceGroup, in *api.Instance) error {
	if len(g.Spec.VolumeTemplates) == 0 {
		return nil
	}
	vc, ok := c.o.Creator.(VolumeCreator)
	if !ok {
		return errors.New("the group controller cannot make volumes")
	}
	for _, t := range g.Spec.VolumeTemplates {
		name := api.MemberVolume(in.Metadata.Name, t.Name)
		if err := vc.EnsureMemberVolume(ctx, c.o.Store, g.Metadata.Project, name, t); err != nil {
			return err
		}
		in.Spec.Volumes = append(in.Spec.Volumes, api.InstanceVolume{Name: name, Path: t.Path, Boot: t.Boot})
	}
	return nil
}
