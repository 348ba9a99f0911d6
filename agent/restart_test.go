package agent

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

func TestBackoffSchedule(t *testing.T) {
	p := defaultBackoff
	var got []time.Duration
	for n := 1; n <= 12; n++ {
		got = append(got, p.delay(n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("delay(1..12) = %v, want %v", got, want)
	}
	// after() follows the same schedule from the previous delay, also
	// when the times written to the API rounded it a little.
	for i := 0; i+1 < len(want); i++ {
		for _, jitter := range []time.Duration{0, -time.Millisecond, 3 * time.Millisecond} {
			if d := p.after(want[i] + jitter); d != want[i+1] {
				t.Errorf("after(%s) = %s, want %s", want[i]+jitter, d, want[i+1])
			}
		}
	}
	if d := p.after(0); d != time.Second {
		t.Errorf("after(0) = %s, want the base", d)
	}
}

func TestCrashDelayFromStatus(t *testing.T) {
	p := defaultBackoff
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	tests := []struct {
		name string
		s    api.InstanceStatus
		ran  time.Duration
		want time.Duration
	}{
		{"first crash", api.InstanceStatus{Phase: api.PhaseRunning}, time.Second, time.Second},
		{"in a loop after 4s", api.InstanceStatus{Phase: api.PhaseRunning, Reason: api.ReasonCrashLoop, FinishedAt: at(0), NextRestartAt: at(4 * time.Second)}, time.Second, 8 * time.Second},
		{"capped", api.InstanceStatus{Phase: api.PhaseRunning, Reason: api.ReasonCrashLoop, FinishedAt: at(0), NextRestartAt: at(5 * time.Minute)}, 0, 5 * time.Minute},
		{"a long run resets", api.InstanceStatus{Phase: api.PhaseRunning, Reason: api.ReasonCrashLoop, FinishedAt: at(0), NextRestartAt: at(64 * time.Second)}, time.Minute, time.Second},
		{"reason cleared resets", api.InstanceStatus{Phase: api.PhaseRunning, FinishedAt: at(0), NextRestartAt: at(64 * time.Second)}, time.Second, time.Second},
	}
	for _, tt := range tests {
		if got := p.crashDelay(&tt.s, tt.ran); got != tt.want {
			t.Errorf("%s: crashDelay = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	exit := func(code int) driver.Status {
		return driver.Status{State: driver.StateStopped, ExitCode: code, HasExitCode: true}
	}
	tests := []struct {
		policy api.RestartPolicy
		st     driver.Status
		want   bool
	}{
		{"", exit(0), true},
		{api.RestartAlways, exit(0), true},
		{api.RestartAlways, exit(1), true},
		{api.RestartOnFailure, exit(0), false},
		{api.RestartOnFailure, exit(137), true},
		{api.RestartOnFailure, driver.Status{State: driver.StateStopped}, true}, // unknown code: a failure
		{api.RestartNever, exit(1), false},
	}
	for _, tt := range tests {
		if got := restarts(tt.policy, tt.st); got != tt.want {
			t.Errorf("restarts(%q, %+v) = %v, want %v", tt.policy, tt.st, got, tt.want)
		}
	}
}

// backoffs returns, from the BackOff events of an instance, the delays
// in their messages ("back-off 40ms restarting ...").
func backoffs(t *testing.T, h *harness, name string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, e := range h.api.Events(t, "demo", name) {
		if e.Reason != "BackOff" {
			continue
		}
		f := strings.Fields(e.Message)
		d, err := time.ParseDuration(f[1])
		if err != nil {
			t.Fatalf("event message %q: %v", e.Message, err)
		}
		out = append(out, d)
	}
	return out
}

func TestCrashLoopBacksOff(t *testing.T) {
	h := newHarness(t)
	key, uid := h.place(t, newInstance("job")) // restart policy Always by default
	h.drv.setExitOnStart(uid, 1)
	h.start(t, h.config())

	// Watch the status: each back-off shows as Starting/CrashLoop with
	// nextRestartAt − finishedAt the delay.
	var delays []time.Duration
	var lastCount int32 = -1
	h.waitInstance(t, key, "five restarts", func(i *api.Instance) bool {
		s := i.Status
		if s.Phase == api.PhaseStarting && s.Reason == api.ReasonCrashLoop && s.RestartCount != lastCount {
			if s.NextRestartAt == nil || s.FinishedAt == nil || s.ExitCode == nil || *s.ExitCode != 1 {
				t.Fatalf("back-off status incomplete: %+v", s)
			}
			if c := api.FindCondition(s.Conditions, api.ConditionReady); c == nil || c.Status || c.Reason != api.ReasonCrashLoop {
				t.Fatalf("Ready condition while backing off = %+v", c)
			}
			lastCount = s.RestartCount
			delays = append(delays, s.NextRestartAt.Sub(*s.FinishedAt))
		}
		return s.RestartCount >= 5
	})
	// At the maximum the BackOff event repeats with the same message: it
	// is counted, not posted again (package record/correlate).
	want := []time.Duration{20, 40, 80, 160}
	for i := range want {
		want[i] *= time.Millisecond
	}
	// Polling may miss a short wait; the delays seen must follow the
	// schedule in order.
	for i := 1; i < len(delays); i++ {
		if delays[i] < delays[i-1] {
			t.Errorf("delays shrink: %v", delays)
		}
	}
	ev := backoffs(t, h, "job")
	if !slices.Equal(ev, want) {
		t.Errorf("BackOff event delays = %v, want %v first", ev, want)
	}
	if n := h.drv.count("start", uid); n < 6 {
		t.Errorf("start called %d times, want at least 6", n)
	}
	waitFor(t, "Restarted events", func() bool { return slices.Contains(h.eventReasons(t, "job"), "Restarted") })

	// It stops crashing: after a run of the reset period the loop state
	// is cleared (restartCount kept), and the next crash starts the
	// schedule again.
	h.drv.setExitOnStart(uid, -1)
	inst := h.waitInstance(t, key, "loop state cleared", func(i *api.Instance) bool {
		return i.Status.Phase == api.PhaseRunning && i.Status.Reason == "" && i.Status.NextRestartAt == nil
	})
	if inst.Status.RestartCount < 5 || inst.Status.FinishedAt != nil || inst.Status.ExitCode != nil {
		t.Errorf("after the reset: %+v", inst.Status)
	}
	if d := time.Since(*inst.Status.StartedAt); d < testBackoff.reset {
		t.Errorf("loop cleared after a run of %s, before the reset period %s", d, testBackoff.reset)
	}
	before := len(backoffs(t, h, "job"))
	h.drv.exit(uid, 2)
	waitFor(t, "a new BackOff", func() bool { return len(backoffs(t, h, "job")) > before })
	if got := backoffs(t, h, "job")[before]; got != testBackoff.base {
		t.Errorf("first delay after a long run = %s, want the base %s", got, testBackoff.base)
	}
}

func TestOnFailurePolicy(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	uids := map[string]string{}
	for _, name := range []string{"ok", "bad"} {
		in := newInstance(name)
		in.Spec.RestartPolicy = api.RestartOnFailure
		_, uids[name] = h.place(t, in)
	}
	h.waitInstance(t, "demo/ok", "Running", phaseIs(api.PhaseRunning))
	h.waitInstance(t, "demo/bad", "Running", phaseIs(api.PhaseRunning))
	h.drv.exit(uids["ok"], 0)
	h.drv.exit(uids["bad"], 1)
	inst := h.waitInstance(t, "demo/ok", "Exited", func(i *api.Instance) bool { return i.Status.Reason == api.ReasonExited })
	if inst.Status.Phase != api.PhaseStopped || inst.Status.RestartCount != 0 {
		t.Errorf("clean exit under OnFailure: %+v", inst.Status)
	}
	inst = h.waitInstance(t, "demo/bad", "restarted", func(i *api.Instance) bool { return i.Status.RestartCount == 1 })
	if inst.Status.Reason != api.ReasonCrashLoop || *inst.Status.ExitCode != 1 {
		t.Errorf("failed exit under OnFailure: %+v", inst.Status)
	}
	if n := h.drv.count("start", uids["ok"]); n != 1 {
		t.Errorf("the cleanly exited instance was started %d times, want 1", n)
	}
}

// TestBackOffSurvivesAgentRestart: a restarted agent finds an instance
// backing off and waits for its nextRestartAt instead of restarting it
// at once or starting the schedule again.
func TestBackOffSurvivesAgentRestart(t *testing.T) {
	h := newHarness(t)
	in := newInstance("job")
	finished := time.Now().UTC()
	next := finished.Add(800 * time.Millisecond)
	code := 1
	in.Status = api.InstanceStatus{Phase: api.PhaseStarting, Reason: api.ReasonCrashLoop, Host: testHost, Driver: "fake",
		RestartCount: 3, FinishedAt: &finished, NextRestartAt: &next, ExitCode: &code, ObservedGeneration: 1}
	key, uid := h.place(t, in)
	h.drv.put(uid, driver.StateStopped)
	h.start(t, h.config())

	waitFor(t, "the agent looked at it", func() bool { return h.reconciles(key) > 0 })
	inst := h.waitInstance(t, key, "restarted", func(i *api.Instance) bool { return i.Status.RestartCount == 4 })
	if inst.Status.StartedAt.Before(next) {
		t.Errorf("restarted at %s, before nextRestartAt %s", inst.Status.StartedAt, next)
	}
	if n := h.drv.count("start", uid); n != 1 {
		t.Errorf("start called %d times, want 1", n)
	}
	// The loop state goes on: the next crash doubles the 800 ms delay
	// (capped by the test schedule's 160 ms maximum).
	if inst.Status.Reason != api.ReasonCrashLoop || !inst.Status.NextRestartAt.Equal(next) {
		t.Errorf("after the restart: reason %q nextRestartAt %v", inst.Status.Reason, inst.Status.NextRestartAt)
	}
}

func TestImageFetchBackOffWaits(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config(), func(a *Agent) {
		a.backoff = backoffPolicy{base: 100 * time.Millisecond, max: 400 * time.Millisecond, reset: time.Second}
	})
	in := newInstance("web")
	in.Spec.Image = "demo/later"
	key, _ := h.place(t, in)
	waitFor(t, "three BackOff events", func() bool {
		n := 0
		for _, r := range h.eventReasons(t, "web") {
			if r == "BackOff" {
				n++
			}
		}
		return n >= 3
	})
	// The attempts, each a read of the image, follow the schedule: 100,
	// 200, 400 ms apart.
	var times []time.Time
	for _, r := range h.rec.Requests() {
		if r.Method == http.MethodGet && r.Path == "/v1/projects/demo/images/later" {
			times = append(times, r.At)
		}
	}
	for i := 1; i < 3; i++ {
		gap := times[i].Sub(times[i-1])
		want := testBackoffDelay(100*time.Millisecond, i)
		if gap < want-10*time.Millisecond { // the back-off starts just after the read
			t.Errorf("attempt %d came %s after the previous, before its back-off of %s", i+1, gap, want)
		}
	}
	h.addImage(t, "later")
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
}

func testBackoffDelay(base time.Duration, n int) time.Duration {
	return base << (n - 1)
}
