package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// Restart back-off defaults (docs/healing.md).
const (
	// BackoffBase is the first delay before restarting a crashed instance
	// or fetching an image again.
	BackoffBase = time.Second
	// BackoffMax caps the delay, which doubles with every crash in a row.
	BackoffMax = 5 * time.Minute
	// BackoffReset is how long a run must last for its crash to count as
	// the first of a new series.
	BackoffReset = 60 * time.Second
)

// backoffPolicy is the schedule of restarts: base, 2·base, 4·base, …
// up to max.
type backoffPolicy struct {
	base, max, reset time.Duration
}

var defaultBackoff = backoffPolicy{base: BackoffBase, max: BackoffMax, reset: BackoffReset}

// delay returns the delay after n failures in a row (n ≥ 1).
func (p backoffPolicy) delay(n int) time.Duration {
	d := p.base
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	return min(d, p.max)
}

// after returns the delay that follows prev in the schedule: the double
// of the schedule step prev stands for, at most max. No prev (zero or
// less) starts the schedule.
func (p backoffPolicy) after(prev time.Duration) time.Duration {
	if prev <= 0 {
		return p.base
	}
	d := p.base
	// Allow for the rounding of times written to the API.
	for d < p.max && d < prev-prev/8 {
		d *= 2
	}
	return min(2*d, p.max)
}

// crashDelay returns how long to wait before restarting an instance with
// status s (as reported before its crash) whose run lasted ran. Within a
// crash loop the previous delay is nextRestartAt − finishedAt of the last
// crash, which the status keeps during the short run that followed: the
// schedule survives an agent restart.
func (p backoffPolicy) crashDelay(s *api.InstanceStatus, ran time.Duration) time.Duration {
	if ran >= p.reset || s.Reason != api.ReasonCrashLoop || s.NextRestartAt == nil || s.FinishedAt == nil {
		return p.base
	}
	return p.after(s.NextRestartAt.Sub(*s.FinishedAt))
}

// restarts reports whether an instance that ended by itself with st is
// restarted under policy.
func restarts(policy api.RestartPolicy, st driver.Status) bool {
	switch policy {
	case api.RestartNever:
		return false
	case api.RestartOnFailure:
		return !st.HasExitCode || st.ExitCode != 0
	}
	return true // Always, the default
}

// backingOff reports whether the instance waits to be restarted after a
// crash.
func (r *instanceRun) backingOff() bool {
	s := &r.inst.Status
	return s.Phase == api.PhaseStarting && s.Reason == api.ReasonCrashLoop && s.NextRestartAt != nil
}

// crashed starts the back-off of an instance whose process ended by
// itself: phase Starting, reason CrashLoop, nextRestartAt, a BackOff
// event, and the key queued for when the delay has passed.
func (r *instanceRun) crashed(ctx context.Context, st driver.Status) error {
	now := time.Now()
	finished := st.FinishedAt
	if finished.IsZero() {
		finished = now
	}
	started := st.StartedAt
	if started.IsZero() && r.inst.Status.StartedAt != nil {
		started = *r.inst.Status.StartedAt
	}
	ran := finished.Sub(started)
	if started.IsZero() {
		ran = 0
	}
	delay := r.a.backoff.crashDelay(&r.inst.Status, ran)
	next := finished.Add(delay)
	how := "ended"
	if st.HasExitCode {
		how = fmt.Sprintf("exited with code %d", st.ExitCode)
	}
	msg := fmt.Sprintf("the instance's process %s after %s; restarting in %s (back-off)", how, ran.Round(time.Millisecond), delay)
	changed, err := r.update(ctx, func(s *api.InstanceStatus) {
		setPhase(api.PhaseStarting, api.ReasonCrashLoop, msg)(s)
		setTime(&s.FinishedAt, finished)
		s.ExitCode = nil
		if st.HasExitCode {
			code := st.ExitCode
			s.ExitCode = &code
		}
		setTime(&s.NextRestartAt, next)
	})
	if err != nil {
		return err
	}
	if changed {
		r.a.event(ctx, r.inst, api.EventWarning, "BackOff", fmt.Sprintf("back-off %s restarting instance: its process %s", delay, how))
	}
	r.requeueAfter(time.Until(next))
	return nil
}

// restartWhenDue restarts an instance backing off after a crash once its
// nextRestartAt has come, and otherwise queues it for then.
func (r *instanceRun) restartWhenDue(ctx context.Context, d driver.Driver) error {
	uid, key := r.inst.Metadata.UID, instanceKey(r.inst)
	if wait := time.Until(*r.inst.Status.NextRestartAt); wait > 0 {
		r.requeueAfter(wait)
		return nil
	}
	if err := r.mayStart(d); err != nil {
		return err
	}
	if err := r.prepareVolumes(ctx, d); err != nil {
		return r.volumeErr(err)
	}
	if err := d.Start(ctx, uid); err != nil {
		return r.fail(ctx, api.ReasonDriverError, fmt.Errorf("restart: %w", err))
	}
	st, err := d.Inspect(ctx, uid)
	if err != nil {
		return fmt.Errorf("inspect %s after restart: %w", key, err)
	}
	startedAt := st.StartedAt
	if startedAt.IsZero() {
		startedAt = time.Now()
	}
	var count int32
	if _, err := r.update(ctx, func(s *api.InstanceStatus) {
		message, next := s.Message, s.NextRestartAt
		setPhase(api.PhaseRunning, api.ReasonCrashLoop, message)(s)
		// finishedAt, exitCode and nextRestartAt describe the crash and
		// its back-off until this run lasts the reset period.
		s.NextRestartAt = next
		setTime(&s.StartedAt, startedAt)
		s.RestartCount++
		count = s.RestartCount
	}); err != nil {
		return err
	}
	r.a.event(ctx, r.inst, api.EventNormal, "Restarted", fmt.Sprintf("instance restarted after a crash (restart %d)", count))
	if st.State != driver.StateRunning {
		r.requeueAfter(0) // it already ended: back off again
	} else {
		r.requeueAfter(r.a.backoff.reset)
	}
	return nil
}

// fetchFailures counts image fetch failures in a row per instance uid.
type fetchFailures struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *fetchFailures) add(uid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[uid]++
	return f.n[uid]
}

func (f *fetchFailures) forget(uid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.n, uid)
}

// fetchBackOff reports a failed image fetch (phase Provisioning, reason
// ImageFetchFailed, nextRestartAt, a BackOff event) and queues the key for
// another try after the back-off. It returns nil: the back-off, not the
// queue's retry, decides when to try again.
//
// The count of failures in a row is kept in memory; nextRestartAt keeps
// a restarted agent from trying before the delay has passed.
func (r *instanceRun) fetchBackOff(ctx context.Context, cause error) error {
	n := r.a.fetches.add(r.inst.Metadata.UID)
	delay := r.a.backoff.delay(n)
	next := time.Now().Add(delay)
	msg := cause.Error()
	if len(msg) > 900 {
		msg = msg[:900] + "…"
	}
	msg = fmt.Sprintf("%s; retrying in %s (back-off)", msg, delay)
	_, err := r.update(ctx, func(s *api.InstanceStatus) {
		setPhase(api.PhaseProvisioning, api.ReasonImageFetchFailed, msg)(s)
		setTime(&s.NextRestartAt, next)
	})
	if err != nil {
		return err
	}
	r.a.event(ctx, r.inst, api.EventWarning, "BackOff", "image fetch failed: "+msg)
	r.requeueAfter(delay)
	return nil
}

// fetchWait reports whether the instance waits out an image fetch
// back-off (and queues it for the end of the wait). A spec change ends
// the wait at once.
func (r *instanceRun) fetchWait() bool {
	s := &r.inst.Status
	if s.Reason != api.ReasonImageFetchFailed || s.NextRestartAt == nil || r.gen > s.ObservedGeneration {
		return false
	}
	wait := time.Until(*s.NextRestartAt)
	if wait <= 0 {
		return false
	}
	r.requeueAfter(wait)
	return true
}
