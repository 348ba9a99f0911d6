package health

import (
	"errors"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestVerdicts(t *testing.T) {
	run := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fail := errors.New("connection refused")
	tests := []struct {
		name      string
		results   []error // probe results in order; nil is a success
		threshold int
		changed   []bool // whether each result changed the verdict
		healthy   bool   // the verdict at the end
	}{
		{"one success", []error{nil}, 3, []bool{true}, true},
		{"successes after the first change nothing", []error{nil, nil}, 3, []bool{true, false}, true},
		{"failures below the threshold", []error{fail, fail}, 3, []bool{false, false}, false},
		{"threshold reached", []error{fail, fail, fail}, 3, []bool{false, false, true}, false},
		{"a success resets the count", []error{nil, fail, fail, nil, fail}, 3, []bool{true, false, false, false, false}, true},
		{"recovery", []error{fail, nil}, 1, []bool{true, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{})
			for i, err := range tt.results {
				if !c.due("uid", run, run.Add(time.Duration(i)*time.Hour), time.Second) {
					t.Fatalf("probe %d not due", i)
				}
				if got := c.record("uid", run, err, tt.threshold, "10.0.0.5:80"); got != tt.changed[i] {
					t.Errorf("result %d (%v): changed %v, want %v", i, err, got, tt.changed[i])
				}
			}
			v, ok := c.get("uid", run)
			if !ok && tt.healthy {
				t.Fatal("no verdict")
			}
			if ok && v.healthy != tt.healthy {
				t.Errorf("healthy = %v, want %v", v.healthy, tt.healthy)
			}
		})
	}
}

func TestDue(t *testing.T) {
	c := New(Config{})
	run := time.Now()
	if !c.due("uid", run, run, time.Second) {
		t.Fatal("first probe not due")
	}
	if c.due("uid", run, run.Add(2*time.Second), time.Second) {
		t.Error("due while a probe is in flight")
	}
	c.record("uid", run, nil, 1, "ip")
	if c.due("uid", run, run.Add(500*time.Millisecond), time.Second) {
		t.Error("due before the interval passed")
	}
	if !c.due("uid", run, run.Add(time.Second), time.Second) {
		t.Error("not due after the interval")
	}
	if !c.due("uid", run.Add(time.Minute), run.Add(time.Second), time.Second) {
		t.Error("a new run is not probed afresh")
	}
	if c.record("uid", run, nil, 1, "ip") {
		t.Error("a result for an old run was recorded")
	}
}

func TestCondition(t *testing.T) {
	run := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	other := run.Add(time.Hour)
	check := &api.HealthCheck{Kind: api.HealthTCP, Port: 80}
	ready := api.Condition{Type: api.ConditionReady, Status: true}
	notReady := api.Condition{Type: api.ConditionReady, Status: false, Reason: "Stopped"}
	probed := func(status bool, reason string) []api.Condition {
		return []api.Condition{{Type: api.ConditionHealthy, Status: status, Reason: reason, Message: "before"}}
	}
	tests := []struct {
		name       string
		check      *api.HealthCheck
		prev       []api.Condition // conditions of the stored instance
		prevRun    *time.Time      // its status.startedAt
		ready      api.Condition
		verdict    error // recorded for run unless nil and noVerdict
		noVerdict  bool
		wantStatus bool
		wantReason string
	}{
		{name: "no check follows Ready", ready: ready, noVerdict: true, wantStatus: true},
		{name: "not ready", check: check, ready: notReady, wantStatus: false, wantReason: "Stopped"},
		{name: "healthy verdict", check: check, ready: ready, wantStatus: true, wantReason: ReasonProbeSucceeded},
		{name: "unhealthy verdict", check: check, ready: ready, verdict: errors.New("refused"), wantStatus: false, wantReason: ReasonProbeFailed},
		{name: "no verdict yet", check: check, ready: ready, noVerdict: true, wantStatus: false, wantReason: ReasonProbing},
		{name: "restarted agent keeps the verdict of the same run", check: check, ready: ready, noVerdict: true,
			prev: probed(true, ReasonProbeSucceeded), prevRun: &run, wantStatus: true, wantReason: ReasonProbeSucceeded},
		{name: "a new run waits for probes", check: check, ready: ready, noVerdict: true,
			prev: probed(true, ReasonProbeSucceeded), prevRun: &other, wantStatus: false, wantReason: ReasonProbing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{})
			if !tt.noVerdict {
				c.due("uid", run, run, time.Second)
				c.record("uid", run, tt.verdict, 1, "10.0.0.5:80")
			}
			inst := &api.Instance{Metadata: api.ObjectMeta{UID: "uid"}, Spec: api.InstanceSpec{HealthCheck: tt.check},
				Status: api.InstanceStatus{Conditions: tt.prev, StartedAt: tt.prevRun}}
			next := &api.InstanceStatus{StartedAt: &run}
			got := c.Condition(inst, next, tt.ready)
			if got.Type != api.ConditionHealthy || got.Status != tt.wantStatus || got.Reason != tt.wantReason {
				t.Errorf("Condition = %+v, want status %v reason %q", got, tt.wantStatus, tt.wantReason)
			}
		})
	}
}
