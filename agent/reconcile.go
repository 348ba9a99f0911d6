package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/queue"
)

// The decisions of one reconcile, read from the latest object and the
// driver's state (level-triggered; every step is idempotent):
//
//	deletionTimestamp, finalizers left (≤ 1 h) ──▶ hold: keep it as it is
//	deletionTimestamp ───────────────────────────▶ Delete ─▶ Terminated
//	driver unknown ──────────────────────────────▶ Failed/DriverError
//	image fetch backing off (nextRestartAt ahead) ▶ wait for it
//	not in driver ─▶ Provisioning ─▶ image ─▶ Create ─┐ (image fetch failure:
//	                                                  │  Provisioning/ImageFetchFailed,
//	                                                  │  retried with back-off; other
//	                                                  │  failures: Failed, retried)
//	created  + wants running ──▶ Starting ─▶ Start ─▶ Running
//	running  + wants stopped ──▶ Stopping ─▶ Stop ──▶ Stopped
//	running  + reboot asked ───▶ Reboot, or Stop ─▶ Start ─▶ Running (restartCount+1)
//	stopped  + wants running:
//	    start asked, or the stop was ours ─▶ Start ─▶ Running
//	    backing off after a crash ──▶ when due: Start ─▶ Running/CrashLoop (restartCount+1)
//	    exited by itself, restart policy says restart ─▶ Starting/CrashLoop (back-off)
//	    else ──────────────────────────────────────▶ Stopped/Exited
//	otherwise ─────────────────────────────────────▶ report what is
//
// Restart back-off is described in docs/healing.md.

// reconcileKey reconciles one instance key for the work queue.
func (a *Agent) reconcileKey(ctx context.Context, key string) (queue.Result, error) {
	res, err := a.reconcile(ctx, key)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("reconcile", "instance", key, "err", err)
	}
	if a.afterReconcile != nil {
		a.afterReconcile(key, err)
	}
	return res, err
}

// reconcile converges the instance of key with its driver, and says when
// to look at it again.
func (a *Agent) reconcile(ctx context.Context, key string) (queue.Result, error) {
	cur, gone := a.cache.get(key)
	for _, g := range gone {
		if err := a.deleteEverywhere(ctx, g.Metadata.UID); err != nil {
			return queue.Result{}, err
		}
		a.unmapVolumes(ctx, g)
		a.cache.forget(g.Metadata.UID)
		a.forgetMember(g.Metadata.UID)
		a.fence.Forget(g.Metadata.UID)
		a.fetches.forget(g.Metadata.UID)
		a.log.Info("removed instance no longer assigned to this host", "instance", key, "uid", g.Metadata.UID)
	}
	if cur == nil {
		return queue.Result{}, nil
	}
	r := &instanceRun{a: a, inst: cur, gen: cur.Metadata.Generation}
	err := r.converge(ctx)
	if errors.Is(err, errReassigned) {
		return queue.Result{Requeue: true}, nil // the watch brings the new state; look again
	}
	return r.next, err
}

// requeueAfter asks for the instance to be reconciled again after d (at
// once if d is zero); the soonest ask of a run wins.
func (r *instanceRun) requeueAfter(d time.Duration) {
	switch {
	case d <= 0:
		r.next = queue.Result{Requeue: true}
	case r.next.Requeue:
	case r.next.RequeueAfter == 0 || d < r.next.RequeueAfter:
		r.next.RequeueAfter = d
	}
}

// deleteEverywhere deletes uid from every driver (Delete of an unknown
// instance does nothing).
func (a *Agent) deleteEverywhere(ctx context.Context, uid string) error {
	for _, name := range a.cfg.Drivers.Names() {
		if err := a.cfg.Drivers.Get(name).Delete(ctx, uid); err != nil {
			return fmt.Errorf("delete %s from driver %s: %w", uid, name, err)
		}
	}
	return nil
}

func (r *instanceRun) converge(ctx context.Context) error {
	inst := r.inst
	if inst.Metadata.DeletionTimestamp != nil {
		if wait := finalizerHold(inst, time.Now()); wait > 0 {
			// A load balancer is draining it: it keeps running as it is.
			// The watch brings the update that clears the finalizers.
			r.requeueAfter(wait)
			return nil
		}
		return r.terminate(ctx)
	}
	if inst.Status.Phase == api.PhaseTerminated {
		return nil
	}
	if r.fetchWait() {
		return nil
	}
	d, err := r.driver(ctx)
	if err != nil || d == nil {
		return err
	}
	uid := inst.Metadata.UID
	st, err := d.Inspect(ctx, uid)
	if r.a.needsNetwork(inst) && (errors.Is(err, driver.ErrNotFound) || (err == nil && st.State != driver.StateRunning)) {
		if _, ready := r.a.ports.Ready(inst); !ready {
			// Its network namespace does not exist yet: the network loop
			// queues the instance again once its ports are applied. While
			// they are being set up, it may be created meanwhile.
			if _, planned := r.a.ports.Planned(inst); !planned || !errors.Is(err, driver.ErrNotFound) {
				return r.waitNetwork(ctx)
			}
		}
	}
	if errors.Is(err, driver.ErrNotFound) {
		if err := r.provision(ctx, d); err != nil {
			return r.volumeErr(err) // waiting for a volume: nil, and soon again
		}
		st, err = d.Inspect(ctx, uid)
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", instanceKey(inst), err)
	}
	wants := r.inst.WantsRunning()
	rebootAsked := r.inst.Spec.RebootRequests > r.inst.Status.ObservedReboots
	switch st.State {
	case driver.StateCreated:
		if wants {
			if _, ready := r.a.ports.Ready(inst); r.a.needsNetwork(inst) && !ready {
				// Created while its ports were being set up: nothing
				// runs before they, and their rules, are in place.
				return r.waitNetwork(ctx)
			}
			return r.start(ctx, d, false)
		}
		return r.markStopped(ctx, st)
	case driver.StateRunning:
		switch {
		case !wants:
			return r.stop(ctx, d)
		case rebootAsked && r.inst.Status.Phase == api.PhaseRunning:
			return r.reboot(ctx, d)
		default:
			if _, hotplug := d.(driver.VolumeAttacher); hotplug && r.inst.Status.ObservedGeneration < r.inst.Metadata.Generation {
				// The spec changed: maybe its volumes.
				if err := r.prepareVolumes(ctx, d); err != nil {
					return r.volumeErr(err)
				}
			}
			return r.markRunning(ctx, st)
		}
	case driver.StateStopped:
		switch {
		case !wants:
			return r.markStopped(ctx, st)
		case rebootAsked:
			return r.start(ctx, d, r.inst.Status.Phase == api.PhaseRunning)
		case r.backingOff():
			if !restarts(r.inst.Spec.RestartPolicy, st) {
				return r.markExited(ctx, st) // the policy changed meanwhile
			}
			return r.restartWhenDue(ctx, d)
		case r.stoppedByUs():
			return r.start(ctx, d, false)
		case restarts(r.inst.Spec.RestartPolicy, st):
			return r.crashed(ctx, st)
		default:
			return r.markExited(ctx, st)
		}
	}
	return fmt.Errorf("instance %s: driver reports unknown state %q", instanceKey(inst), st.State)
}

// stoppedByUs reports whether the instance is stopped because the agent
// stopped it (or failed to start it, or was about to start it, or fenced
// it), rather than because it exited.
func (r *instanceRun) stoppedByUs() bool {
	s := r.inst.Status
	if r.a.fence.WasFenced(r.inst.Metadata.UID) {
		return true
	}
	switch s.Phase {
	case api.PhaseStopping, api.PhaseFailed, api.PhaseStarting:
		return true
	case api.PhaseStopped:
		return s.Reason != api.ReasonExited
	}
	return false
}

// driver returns the instance's driver. The driver name is status.driver,
// or the image's driver when the scheduler left it empty. An unknown
// driver fails the instance (nil, nil).
func (r *instanceRun) driver(ctx context.Context) (driver.Driver, error) {
	name := r.inst.Status.Driver
	if name == "" {
		img, err := r.fetchImage(ctx)
		if err != nil {
			return nil, r.fetchBackOff(ctx, err)
		}
		name = img.Status.Driver
	}
	d := r.a.cfg.Drivers.Get(name)
	if d != nil && r.inst.Status.Driver == "" {
		if _, err := r.update(ctx, func(s *api.InstanceStatus) { s.Driver = name }); err != nil {
			return nil, err
		}
	}
	if d == nil {
		err := fmt.Errorf("driver %q is not available on host %s (it has %s)", name, r.a.name(),
			strings.Join(r.a.cfg.Drivers.Names(), ", "))
		changed, uerr := r.update(ctx, setPhase(api.PhaseFailed, api.ReasonDriverError, err.Error()))
		if uerr != nil {
			return nil, uerr // the status write failed: retry
		}
		if changed {
			r.a.event(ctx, r.inst, api.EventWarning, api.ReasonDriverError, err.Error())
		}
		return nil, nil // retrying cannot help; a change of the instance brings it back
	}
	return d, nil
}

// fetchImage reads the instance's image (spec.image is "project/name").
func (r *instanceRun) fetchImage(ctx context.Context) (*api.Image, error) {
	if r.image != nil {
		return r.image, nil
	}
	project, name, ok := strings.Cut(r.inst.Spec.Image, "/")
	if !ok {
		project, name = r.inst.Metadata.Project, r.inst.Spec.Image
	}
	var img api.Image
	if err := r.a.sess.Client().Get(ctx, api.ImageKind, project, name, &img); err != nil {
		return nil, fmt.Errorf("fetch image %q: %w", r.inst.Spec.Image, err)
	}
	r.image = &img
	return &img, nil
}

// provision prepares the instance in the driver.
//
// The Provisioning status is written while the image is read and the
// driver creates the instance, not before: the write and the work
// overlap, and the next status write waits for it.
func (r *instanceRun) provision(ctx context.Context, d driver.Driver) error {
	var pending *pendingUpdate
	if p := r.inst.Status.Phase; p != api.PhaseProvisioning && p != api.PhaseFailed {
		pending = r.updateAsync(ctx, setPhase(api.PhaseProvisioning, "", ""))
	}
	img, err := r.fetchImage(ctx)
	if err != nil {
		if werr := r.wait(pending); werr != nil {
			return werr
		}
		return r.fetchBackOff(ctx, err)
	}
	inst := r.inst
	spec := driver.Spec{
		ID:        inst.Metadata.UID,
		Name:      inst.Metadata.Name,
		Project:   inst.Metadata.Project,
		Image:     img.Spec,
		Command:   inst.Spec.Command,
		Env:       inst.Spec.Env,
		Resources: inst.Spec.Resources,
	}
	if p, ok := r.a.ports.Planned(inst); ok && r.a.needsNetwork(inst) {
		spec.NetNS, spec.Nameservers = p.NetNS, p.Nameservers
		spec.Interfaces = orderNICs(p.NICs, inst.Status.Interfaces)
	}
	spec.PublicKeys, spec.UserData, spec.Zone = inst.Spec.PublicKeys, inst.Spec.UserData, r.a.zone()
	if spec.Volumes, err = r.a.resolveVolumes(ctx, inst, d); err != nil {
		return err
	}
	// A group member is recorded before it exists, so that fencing finds
	// it even if the agent dies right after Create and starts again
	// without the API (fence.Record). Without the record, no member.
	if err := r.a.members.AddInstance(inst, d.Name()); err != nil {
		return fmt.Errorf("provision %s: %w", instanceKey(inst), err)
	}
	err = d.Create(ctx, spec)
	if werr := r.wait(pending); werr != nil {
		return errors.Join(werr, err)
	}
	if err != nil {
		var fe *fetchError
		if errors.As(err, &fe) {
			return r.fetchBackOff(ctx, fmt.Errorf("create: %w", err))
		}
		return r.fail(ctx, api.ReasonDriverError, fmt.Errorf("create: %w", err))
	}
	r.a.fetches.forget(inst.Metadata.UID)
	return nil
}

// needsNetwork reports whether an instance waits for its network ports
// before the driver may run it.
func (a *Agent) needsNetwork(inst *api.Instance) bool {
	return a.cfg.Network != nil && len(inst.Status.Interfaces) > 0
}

// orderNICs returns the ports in the order of the instance's interfaces
// (its first network is its primary), matched by MAC; ports of no
// interface come last.
func orderNICs(nics []driver.NIC, ifcs []api.Interface) []driver.NIC {
	var out []driver.NIC
	used := make([]bool, len(nics))
	for _, ifc := range ifcs {
		for i, n := range nics {
			if !used[i] && strings.EqualFold(n.MAC, ifc.MAC) {
				out = append(out, n)
				used[i] = true
				break
			}
		}
	}
	for i, n := range nics {
		if !used[i] {
			out = append(out, n)
		}
	}
	return out
}

// fail reports phase Failed with reason and cause (and an event when
// the status changed) and returns cause, so the key is retried.
func (r *instanceRun) fail(ctx context.Context, reason string, cause error) error {
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	changed, err := r.update(ctx, setPhase(api.PhaseFailed, reason, msg))
	if err != nil {
		return errors.Join(cause, err)
	}
	if changed {
		r.a.event(ctx, r.inst, api.EventWarning, reason, msg)
	}
	return cause
}

// start starts the instance and reports it Running with the reboot
// requests it honoured.
func (r *instanceRun) start(ctx context.Context, d driver.Driver, reboot bool) error {
	uid := r.inst.Metadata.UID
	if err := r.mayStart(d); err != nil {
		return err
	}
	if err := r.prepareVolumes(ctx, d); err != nil {
		return r.volumeErr(err)
	}
	// Starting is written while the driver starts the instance.
	pending := r.updateAsync(ctx, setPhase(api.PhaseStarting, "", ""))
	err := d.Start(ctx, uid)
	if werr := r.wait(pending); werr != nil {
		return errors.Join(werr, err) // the next reconcile reports what is
	}
	if err != nil {
		return r.fail(ctx, api.ReasonDriverError, fmt.Errorf("start: %w", err))
	}
	r.a.fence.Forget(uid)
	return r.started(ctx, d, reboot)
}

// mayStart is checked before every start: fencing may hold group members
// back, and a member is recorded (fence.Record) before it runs.
func (r *instanceRun) mayStart(d driver.Driver) error {
	if err := r.a.fence.AllowStart(r.inst); err != nil {
		return err
	}
	if err := r.a.members.AddInstance(r.inst, d.Name()); err != nil {
		return fmt.Errorf("start %s: %w", instanceKey(r.inst), err)
	}
	return nil
}

// reboot restarts a running instance: in place when the driver can
// (a VM's reset), else by Stop and Start.
func (r *instanceRun) reboot(ctx context.Context, d driver.Driver) error {
	uid := r.inst.Metadata.UID
	if rb, ok := d.(driver.Rebooter); ok {
		if err := rb.Reboot(ctx, uid); err != nil {
			return fmt.Errorf("reboot %s: %w", instanceKey(r.inst), err)
		}
		return r.started(ctx, d, true)
	}
	if err := d.Stop(ctx, uid, r.a.stopTimeout); err != nil {
		return fmt.Errorf("reboot %s: stop: %w", instanceKey(r.inst), err)
	}
	if err := r.prepareVolumes(ctx, d); err != nil {
		return r.volumeErr(err)
	}
	if err := d.Start(ctx, uid); err != nil {
		return r.fail(ctx, api.ReasonDriverError, fmt.Errorf("reboot: start: %w", err))
	}
	return r.started(ctx, d, true)
}

// started reports a just-started instance Running.
func (r *instanceRun) started(ctx context.Context, d driver.Driver, reboot bool) error {
	uid := r.inst.Metadata.UID
	st, err := d.Inspect(ctx, uid)
	if err != nil {
		return fmt.Errorf("inspect %s after start: %w", instanceKey(r.inst), err)
	}
	startedAt := st.StartedAt
	if startedAt.IsZero() {
		startedAt = time.Now()
	}
	reboots := r.inst.Spec.RebootRequests
	if _, err := r.update(ctx, func(s *api.InstanceStatus) {
		setPhase(api.PhaseRunning, "", "")(s)
		setTime(&s.StartedAt, startedAt)
		s.FinishedAt, s.ExitCode = nil, nil
		s.ObservedReboots = max(s.ObservedReboots, reboots)
		if reboot {
			s.RestartCount++
		}
	}); err != nil {
		return err
	}
	if reboot {
		r.a.event(ctx, r.inst, api.EventNormal, "Rebooted", "instance rebooted")
	} else {
		r.a.event(ctx, r.inst, api.EventNormal, "Started", "instance started")
	}
	if st.State != driver.StateRunning {
		r.requeueAfter(0) // it already ended: report that next
	}
	return nil
}

// stop stops a running instance the user wants stopped.
func (r *instanceRun) stop(ctx context.Context, d driver.Driver) error {
	uid := r.inst.Metadata.UID
	if _, err := r.update(ctx, setPhase(api.PhaseStopping, "", "")); err != nil {
		return err
	}
	if err := d.Stop(ctx, uid, r.a.stopTimeout); err != nil {
		return fmt.Errorf("stop %s: %w", instanceKey(r.inst), err)
	}
	st, err := d.Inspect(ctx, uid)
	if err != nil {
		return fmt.Errorf("inspect %s after stop: %w", instanceKey(r.inst), err)
	}
	return r.markStopped(ctx, st)
}

// markRunning reports an instance found running (after a start, or
// adopted after an agent restart) without touching it.
//
// A run that follows a crash restart keeps reason CrashLoop, with the
// crashed run's finishedAt and exit code and the back-off's nextRestartAt,
// until it has lasted the reset period; then they are cleared and the
// next crash backs off from the start again.
func (r *instanceRun) markRunning(ctx context.Context, st driver.Status) error {
	reboots := r.inst.Spec.RebootRequests
	adopting := r.inst.Status.Phase != api.PhaseRunning
	var resetIn time.Duration
	_, err := r.update(ctx, func(s *api.InstanceStatus) {
		loop := s.Reason == api.ReasonCrashLoop
		reason, message, next := s.Reason, s.Message, s.NextRestartAt
		setPhase(api.PhaseRunning, "", "")(s)
		if !st.StartedAt.IsZero() {
			setTime(&s.StartedAt, st.StartedAt)
		} else if s.StartedAt == nil {
			setTime(&s.StartedAt, time.Now())
		}
		resetIn = 0
		if loop {
			resetIn = s.StartedAt.Add(r.a.backoff.reset).Sub(time.Now())
		}
		if resetIn > 0 {
			s.Reason, s.Message, s.NextRestartAt = reason, message, next
		} else {
			s.FinishedAt, s.ExitCode = nil, nil
		}
		if adopting {
			// Started before the agent could record it: that start
			// honoured every reboot asked for until now.
			s.ObservedReboots = max(s.ObservedReboots, reboots)
		}
	})
	if err == nil && resetIn > 0 {
		r.requeueAfter(resetIn)
	}
	return err
}

// markStopped reports an instance stopped as the user wants it. An
// instance already reported Stopped keeps its reason (e.g. Exited).
func (r *instanceRun) markStopped(ctx context.Context, st driver.Status) error {
	if r.inst.Status.Phase == api.PhaseStopped {
		_, err := r.update(ctx, func(*api.InstanceStatus) {})
		return err
	}
	changed, err := r.update(ctx, func(s *api.InstanceStatus) {
		setPhase(api.PhaseStopped, "", "")(s)
		setTime(&s.FinishedAt, st.FinishedAt)
		s.ExitCode = nil
		if st.HasExitCode {
			code := st.ExitCode
			s.ExitCode = &code
		}
	})
	if err == nil && changed {
		r.a.event(ctx, r.inst, api.EventNormal, "Stopped", "instance stopped")
	}
	return err
}

// markExited reports an instance whose process ended by itself and that
// its restart policy does not restart.
func (r *instanceRun) markExited(ctx context.Context, st driver.Status) error {
	msg := "the instance's process exited"
	if st.HasExitCode {
		msg = fmt.Sprintf("the instance's process exited with code %d", st.ExitCode)
	}
	finished := st.FinishedAt
	if finished.IsZero() {
		finished = time.Now()
	}
	changed, err := r.update(ctx, func(s *api.InstanceStatus) {
		if s.Phase == api.PhaseStopped && s.Reason == api.ReasonExited {
			return // reported already; keep its times
		}
		setPhase(api.PhaseStopped, api.ReasonExited, msg)(s)
		setTime(&s.FinishedAt, finished)
		s.ExitCode = nil
		if st.HasExitCode {
			code := st.ExitCode
			s.ExitCode = &code
		}
	})
	if err == nil && changed {
		typ := api.EventWarning
		if st.HasExitCode && st.ExitCode == 0 {
			typ = api.EventNormal
		}
		r.a.event(ctx, r.inst, typ, api.ReasonExited, msg)
	}
	return err
}

// MaxFinalizerHold bounds how long the finalizers of a deleted instance
// (a load balancer draining it) hold its teardown, from its deletion
// timestamp.
const MaxFinalizerHold = time.Hour

// finalizerHold returns how much longer the teardown of a deleted
// instance waits for its finalizers: 0 once they are gone or
// MaxFinalizerHold has passed since the deletion timestamp.
func finalizerHold(inst *api.Instance, now time.Time) time.Duration {
	m := inst.Metadata
	if m.DeletionTimestamp == nil || len(m.Finalizers) == 0 {
		return 0
	}
	return max(m.DeletionTimestamp.Add(MaxFinalizerHold).Sub(now), 0)
}

// terminate removes a deleted instance from its driver and reports it
// Terminated; the instance controller then removes the object.
func (r *instanceRun) terminate(ctx context.Context) error {
	uid := r.inst.Metadata.UID
	if d := r.a.cfg.Drivers.Get(r.inst.Status.Driver); d != nil {
		if err := d.Delete(ctx, uid); err != nil {
			return fmt.Errorf("delete %s: %w", instanceKey(r.inst), err)
		}
	} else if err := r.a.deleteEverywhere(ctx, uid); err != nil {
		return err
	}
	// Detach, never delete: the volumes stay; only their mappings go.
	r.a.unmapVolumes(ctx, r.inst)
	changed, err := r.update(ctx, setPhase(api.PhaseTerminated, "", ""))
	if err == nil && changed {
		r.a.event(ctx, r.inst, api.EventNormal, "Terminated", "instance deleted from host "+r.a.name())
	}
	return err
}
