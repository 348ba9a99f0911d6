package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/queue"
)

// errReassigned says the instance changed identity or host under us.
var errReassigned = errors.New("instance was replaced or moved to another host")

// instanceRun is one reconcile of one instance: the latest object it knows
// and the spec generation it acts on.
type instanceRun struct {
	a    *Agent
	inst *api.Instance
	gen  int64
	// image is fetched once per run when needed.
	image *api.Image
	// next is when the queue should look at the instance again.
	next queue.Result
}

// update applies mutate to the instance's status and writes it with the
// resourceVersion it read. The conditions Ready and Healthy are derived
// from the result (see conditions), so every write also corrects them. It
// writes only when something changed, and on a conflict reads the
// instance again and reapplies mutate. It reports whether it wrote.
func (r *instanceRun) update(ctx context.Context, mutate func(s *api.InstanceStatus)) (bool, error) {
	for attempt := 0; ; attempt++ {
		next := cloneInstance(r.inst)
		mutate(&next.Status)
		r.a.conditions(r.inst, &next.Status)
		next.Status.ObservedGeneration = max(next.Status.ObservedGeneration, r.gen)
		same, err := sameStatus(&r.inst.Status, &next.Status)
		if err != nil {
			return false, err
		}
		if same {
			return false, nil
		}
		cl := r.a.sess.Client()
		// Remember the write before it is made, as its echo on the watch
		// may come before the answer, and again as the server stored it:
		// the echo is then no reason to reconcile again (see watchLoop).
		r.a.cache.wrote(next)
		err = cl.UpdateStatus(ctx, next)
		if err == nil {
			r.a.cache.wrote(next)
			r.inst = next
			r.a.cache.refresh(next)
			return true, nil
		}
		if !api.IsConflict(err) || attempt >= 5 {
			return false, fmt.Errorf("update status of %s: %w", instanceKey(r.inst), err)
		}
		var fresh api.Instance
		if err := cl.Get(ctx, api.InstanceKind, r.inst.Metadata.Project, r.inst.Metadata.Name, &fresh); err != nil {
			return false, fmt.Errorf("read %s again after a conflict: %w", instanceKey(r.inst), err)
		}
		if fresh.Metadata.UID != r.inst.Metadata.UID || (fresh.Status.Host != "" && fresh.Status.Host != r.a.name()) {
			return false, fmt.Errorf("%s: %w", instanceKey(r.inst), errReassigned)
		}
		r.inst = &fresh
		r.a.cache.refresh(&fresh)
	}
}

// pendingUpdate is a status write in flight while the driver works.
type pendingUpdate struct {
	run  *instanceRun // a copy of the run that makes the write
	done chan struct{}
	err  error
}

// updateAsync starts update(mutate) on a copy of r and returns at once,
// so that the write overlaps driver work. r must not write the status
// again before wait, which makes r take the object as written.
func (r *instanceRun) updateAsync(ctx context.Context, mutate func(s *api.InstanceStatus)) *pendingUpdate {
	p := &pendingUpdate{run: &instanceRun{a: r.a, inst: r.inst, gen: r.gen}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_, p.err = p.run.update(ctx, mutate)
	}()
	return p
}

// wait waits for the pending write p (nil: none) and returns its error;
// r then holds the instance as the write left it.
func (r *instanceRun) wait(p *pendingUpdate) error {
	if p == nil {
		return nil
	}
	<-p.done
	r.inst = p.run.inst
	return p.err
}

// sameStatus compares two statuses by their JSON form, so that equal
// times in different representations compare equal.
func sameStatus(a, b *api.InstanceStatus) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encode status: %w", err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("encode status: %w", err)
	}
	return string(ja) == string(jb), nil
}

// setPhase returns a mutation that sets phase, reason and message. It
// clears nextRestartAt (back-offs set it again after), and the usage of an
// instance that is not Running. update derives the conditions.
func setPhase(phase api.InstancePhase, reason, message string) func(s *api.InstanceStatus) {
	return func(s *api.InstanceStatus) {
		s.Phase, s.Reason, s.Message = phase, reason, message
		s.NextRestartAt = nil
		if phase != api.PhaseRunning {
			s.Usage = nil
		}
	}
}

// conditions sets the Ready and Healthy conditions of next, the status
// about to be written for inst: Ready is true only when Running, else it
// carries the reason (or the phase) and message; Healthy is the health
// check's verdict (see health.Checker.Condition).
func (a *Agent) conditions(inst *api.Instance, next *api.InstanceStatus) {
	now := time.Now().UTC()
	ready := api.Condition{Type: api.ConditionReady, Status: next.Phase == api.PhaseRunning}
	if !ready.Status {
		ready.Reason = next.Reason
		if ready.Reason == "" {
			ready.Reason = string(next.Phase)
		}
		ready.Message = next.Message
	}
	next.Conditions = api.SetCondition(next.Conditions, ready, now)
	next.Conditions = api.SetCondition(next.Conditions, a.health.Condition(inst, next, ready), now)
}

// setTime sets *dst to t (in UTC) unless it already holds that instant.
// A zero t clears it.
func setTime(dst **time.Time, t time.Time) {
	if t.IsZero() {
		*dst = nil
		return
	}
	if *dst != nil && (*dst).Equal(t) {
		return
	}
	u := t.UTC().Round(0)
	*dst = &u
}

// event records something that happened to an instance. Repeats of an
// event and events beyond the instance's budget are counted or dropped
// instead of posted (package record/correlate). A failure to post is
// logged and never fails the reconcile.
func (a *Agent) event(ctx context.Context, inst *api.Instance, typ, reason, message string) {
	ev := &api.Event{
		Kind:     api.EventKind.Name,
		Metadata: api.ObjectMeta{Name: eventName(inst.Metadata.Name), Project: inst.Metadata.Project},
		Object: api.ObjectRef{Kind: api.InstanceKind.Name, Project: inst.Metadata.Project,
			Name: inst.Metadata.Name, UID: inst.Metadata.UID},
		Type:    typ,
		Reason:  reason,
		Message: message,
		Source:  "agent/" + a.name(),
		Time:    time.Now().UTC(),
	}
	if !a.events.Correlate(ev) {
		a.log.Debug("event not posted: a repeat, or too many about the instance", "instance", instanceKey(inst), "reason", reason)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := a.sess.Client().Create(ctx, ev, client.CreateOptions{}); err != nil {
		a.log.Warn("post event", "instance", instanceKey(inst), "reason", reason, "err", err)
	}
}

// eventName returns a fresh event name: the object's name (shortened)
// and a random suffix, a valid DNS label.
func eventName(object string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	if len(object) > 40 {
		object = object[:40]
	}
	for len(object) > 0 && object[len(object)-1] == '-' {
		object = object[:len(object)-1]
	}
	if object == "" {
		object = "event"
	}
	return object + "-" + hex.EncodeToString(b[:])
}
