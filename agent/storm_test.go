package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// stormBackoff is the queue back-off of the tests below: 20 ms doubling
// to 10 s, so that a few attempts show the schedule.
const (
	stormBase = 20 * time.Millisecond
	stormMax  = 10 * time.Second
)

// stormDelay is the least time between attempt n and n+1 (n from 1) of a
// key that fails every time.
func stormDelay(n int) time.Duration {
	d := stormBase
	for i := 1; i < n && d < stormMax; i++ {
		d *= 2
	}
	return min(d, stormMax)
}

// A failure whose message changes on every attempt makes every attempt
// write a new status. Those writes come back through the agent's watch;
// they must not run the instance again before its back-off, or the agent
// writes and posts events as fast as it can. Changes by users are still
// acted on at once.
func TestChangingFailureKeepsBackOff(t *testing.T) {
	tests := []struct {
		op string // the driver operation that fails
		// writesPerAttempt: Failed with the new message; a start also
		// writes Starting first.
		writesPerAttempt int
	}{
		{"create", 1},
		{"start", 2},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			h := newHarness(t)
			h.drv.setFail(tt.op, func(n int) error {
				return fmt.Errorf("extract layer: open /tmp/layer-%d/etc: no such file or directory", n)
			})
			h.start(t, h.config(), func(a *Agent) { a.queue.WithBackoff(stormBase, stormMax) })
			key, _ := h.place(t, newInstance("web"))

			// Nine attempts: the back-off before the tenth is 5.12 s, a
			// margin wide enough on a loaded machine for the checks below
			// that a spec change or a deletion is acted on before it.
			const attempts = 9
			waitFor(t, fmt.Sprintf("%d attempts", attempts), func() bool { return len(h.drv.times(tt.op)) >= attempts })
			// The last attempt's failure is written just after it.
			h.waitInstance(t, key, "Failed/"+api.ReasonDriverError, func(i *api.Instance) bool {
				return i.Status.Phase == api.PhaseFailed && i.Status.Reason == api.ReasonDriverError
			})
			writes, events := h.writes(), len(h.api.Events(t, "demo", "web"))
			times := h.drv.times(tt.op)
			for i := 1; i < len(times); i++ {
				if gap, want := times[i].Sub(times[i-1]), stormDelay(i); gap < want {
					t.Errorf("attempt %d came %s after attempt %d, before its back-off of %s", i+1, gap, i, want)
				}
			}
			// The first Provisioning, then the writes of each attempt; at
			// most one event per attempt.
			if max := 1 + tt.writesPerAttempt*len(times); writes > max {
				t.Errorf("%d status writes for %d attempts, want at most %d", writes, len(times), max)
			}
			if events > len(times) {
				t.Errorf("%d events for %d attempts, want at most one each", events, len(times))
			}

			// A change of the spec is acted on at once, not after the
			// back-off.
			n := len(h.drv.times(tt.op))
			h.updateSpec(t, key, func(i *api.Instance) { i.Spec.Env = append(i.Spec.Env, "FIX=1") })
			waitFor(t, "an attempt after the spec change", func() bool { return len(h.drv.times(tt.op)) > n })
			times = h.drv.times(tt.op)
			if gap, backoff := times[n].Sub(times[n-1]), stormDelay(n); gap >= backoff {
				t.Errorf("the attempt after a spec change came %s after the previous one, not before the back-off of %s", gap, backoff)
			}

			// So is a deletion.
			deleted := time.Now()
			h.edit(t, key, func(i *api.Instance) { i.Metadata.DeletionTimestamp = &deleted })
			waitFor(t, "the instance removed", func() bool { return h.get(t, key) == nil })
			if d, backoff := time.Since(deleted), stormDelay(n+1); d >= backoff {
				t.Errorf("removed %s after the deletion, not before the back-off of %s", d, backoff)
			}
		})
	}
}

// A failure that repeats with the same message is written and posted
// once: the status does not change, and the event's repeats are counted.
func TestRepeatedFailureWrittenOnce(t *testing.T) {
	h := newHarness(t)
	h.drv.setFail("create", func(int) error { return fmt.Errorf("no space left on device") })
	h.start(t, h.config(), func(a *Agent) { a.queue.WithBackoff(time.Millisecond, 5*time.Millisecond) })
	h.place(t, newInstance("web"))

	waitFor(t, "ten create attempts", func() bool { return len(h.drv.times("create")) >= 10 })
	if w := h.writes(); w > 2 {
		t.Errorf("%d status writes, want 2 (Provisioning, then Failed once)", w)
	}
	var failures int
	for _, e := range h.api.Events(t, "demo", "web") {
		if e.Reason == api.ReasonDriverError {
			failures++
		}
	}
	if failures != 1 {
		t.Errorf("%d %s events, want 1: repeats are counted, not posted", failures, api.ReasonDriverError)
	}
}
