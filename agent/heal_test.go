package agent

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/fence"
	"github.com/ouroboros-cloud/ouro/agent/health"
	"github.com/ouroboros-cloud/ouro/agent/hostnet"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// fakeProber answers health probes with an error the test sets.
type fakeProber struct {
	mu    sync.Mutex
	err   error
	calls int
	seen  []string // "ns ip port"
}

func (p *fakeProber) probe(_ context.Context, ns, ip string, hc api.HealthCheck) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.seen = append(p.seen, ns+" "+ip+" "+strconv.Itoa(hc.Port))
	return p.err
}

func (p *fakeProber) set(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *fakeProber) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func healthOf(i *api.Instance) *api.Condition {
	return api.FindCondition(i.Status.Conditions, api.ConditionHealthy)
}

func TestHealthProbes(t *testing.T) {
	h := newHarness(t)
	pr := &fakeProber{}
	in := newInstance("web")
	in.Spec.HealthCheck = &api.HealthCheck{Kind: api.HealthHTTP, Port: 8080, Path: "/healthz", IntervalSeconds: 1, FailureThreshold: 2}
	in.Status.Interfaces = []api.Interface{{Network: "default", IP: "10.0.0.5"}}
	key, uid := h.place(t, in)
	plain, _ := h.place(t, newInstance("plain"))
	h.start(t, h.config(), func(a *Agent) {
		a.probe = pr.probe
		// As the network loop records an applied HostNetwork.
		a.ports.Set(map[string]hostnet.Port{uid: {Routers: map[string]string{"10.0.0.5": "/run/netns/ouro-n4096"}}}, nil)
	})

	inst := h.waitInstance(t, key, "Healthy", func(i *api.Instance) bool { c := healthOf(i); return c != nil && c.Status })
	if c := healthOf(inst); c.Reason != health.ReasonProbeSucceeded || !strings.Contains(c.Message, "10.0.0.5:8080") {
		t.Errorf("Healthy = %+v", c)
	}
	pr.mu.Lock()
	first := pr.seen[0]
	pr.mu.Unlock()
	if first != "/run/netns/ouro-n4096 10.0.0.5 8080" {
		t.Errorf("probed %q, want the router namespace, the first interface and the port", first)
	}
	// Without a check, Healthy follows Running.
	p := h.waitInstance(t, plain, "Running", phaseIs(api.PhaseRunning))
	if c := healthOf(p); c == nil || !c.Status {
		t.Errorf("Healthy of an instance without a check = %+v, want true while Running", c)
	}

	// Probes succeed on and on: no more status writes.
	writes, calls := h.writes(), pr.count()
	waitFor(t, "two more probes", func() bool { return pr.count() >= calls+2 })
	if w := h.writes(); w != writes {
		t.Errorf("%d status writes while nothing changed", w-writes)
	}

	// Failures: unhealthy only after failureThreshold in a row.
	pr.set(errors.New("http probe of http://10.0.0.5:8080/healthz: status 503 Service Unavailable"))
	calls = pr.count()
	inst = h.waitInstance(t, key, "Unhealthy", func(i *api.Instance) bool { c := healthOf(i); return c != nil && !c.Status })
	if n := pr.count() - calls; n < 2 {
		t.Errorf("unhealthy after %d failed probes, want 2", n)
	}
	if c := healthOf(inst); c.Reason != health.ReasonProbeFailed || !strings.Contains(c.Message, "503") {
		t.Errorf("Healthy = %+v", c)
	}
	if inst.Status.Phase != api.PhaseRunning {
		t.Errorf("phase = %s: health does not change the phase", inst.Status.Phase)
	}
	waitFor(t, "Unhealthy event", func() bool { return slices.Contains(h.eventReasons(t, "web"), "Unhealthy") })

	// One success makes it healthy again.
	pr.set(nil)
	h.waitInstance(t, key, "Healthy again", func(i *api.Instance) bool { c := healthOf(i); return c != nil && c.Status })

	// Stopped: not healthy, and no probes.
	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.PowerState = api.PowerOff })
	inst = h.waitInstance(t, key, "Stopped", phaseIs(api.PhaseStopped))
	if c := healthOf(inst); c == nil || c.Status {
		t.Errorf("Healthy of a stopped instance = %+v", c)
	}
}

// TestHealthWithoutNetworkPath: a checked instance the host cannot reach
// is unhealthy, saying why, rather than healthy by default.
func TestHealthWithoutNetworkPath(t *testing.T) {
	h := newHarness(t)
	pr := &fakeProber{}
	h.start(t, h.config(), func(a *Agent) { a.probe = pr.probe })
	in := newInstance("web")
	in.Spec.HealthCheck = &api.HealthCheck{Kind: api.HealthTCP, Port: 22, IntervalSeconds: 1, FailureThreshold: 1}
	key, _ := h.place(t, in)
	inst := h.waitInstance(t, key, "Unhealthy", func(i *api.Instance) bool { c := healthOf(i); return c != nil && c.Reason == health.ReasonProbeFailed })
	if c := healthOf(inst); c.Status || !strings.Contains(c.Message, "no network path") {
		t.Errorf("Healthy = %+v", c)
	}
	if pr.count() != 0 {
		t.Errorf("probed %d times without a target", pr.count())
	}
}

func TestUsageReported(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.UsageInterval = 20 * time.Millisecond
	in := newInstance("web")
	in.Spec.Resources.VCPUs = 2
	key, uid := h.place(t, in)
	h.drv.setCPURate(uid, 0.5) // half a vCPU busy
	h.start(t, cfg)

	inst := h.waitInstance(t, key, "usage", func(i *api.Instance) bool { return i.Status.Usage != nil })
	u := inst.Status.Usage
	if u.CPUMillicores < 450 || u.CPUMillicores > 550 || u.CPUPercent < 22.5 || u.CPUPercent > 27.5 || u.SampledAt.IsZero() {
		t.Errorf("usage = %+v, want about 500 millicores, 25%%", u)
	}

	// Steady use: samples go on, writes do not (until the 30 s refresh).
	// A few samples first, so that the write of the first usage (which
	// may still be on its way back to the recorder) is counted.
	settle := h.drv.reads()
	waitFor(t, "three more samples", func() bool { return h.drv.reads() >= settle+3 })
	writes, reads := h.writes(), h.drv.reads()
	waitFor(t, "ten more samples", func() bool { return h.drv.reads() >= reads+10 })
	if w := h.writes(); w != writes {
		t.Errorf("%d status writes for an unchanged usage", w-writes)
	}

	// A real change is written.
	h.drv.setCPURate(uid, 1.8)
	inst = h.waitInstance(t, key, "new usage", func(i *api.Instance) bool { return i.Status.Usage.CPUMillicores > 1000 })
	if u := inst.Status.Usage; u.CPUPercent < 80 || u.CPUPercent > 100 {
		t.Errorf("usage = %+v, want about 90%%", u)
	}

	// Stopped instances carry no usage.
	h.updateSpec(t, key, func(i *api.Instance) { i.Spec.PowerState = api.PowerOff })
	inst = h.waitInstance(t, key, "Stopped", phaseIs(api.PhaseStopped))
	if inst.Status.Usage != nil {
		t.Errorf("stopped instance has usage %+v", inst.Status.Usage)
	}
}

func TestFencing(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.LeaseTTL = 400 * time.Millisecond // fenced 300 ms after the last heartbeat
	h.start(t, cfg)
	member := newInstance("web-1")
	member.Metadata.Labels = map[string]string{api.LabelGroup: "web"}
	mkey, memberUID := h.place(t, member)
	skey, soloUID := h.place(t, newInstance("solo"))
	h.waitInstance(t, mkey, "Running", phaseIs(api.PhaseRunning))
	h.waitInstance(t, skey, "Running", phaseIs(api.PhaseRunning))

	h.failBeats(true)
	cut := time.Now()
	waitFor(t, "group member fenced", func() bool { return h.drv.state(memberUID) == driver.StateStopped })
	// The deadline is three quarters of the TTL after the last good
	// heartbeat was sent (a loose bound here: the machine may be busy).
	if dl := fence.New(fence.Config{LeaseTTL: cfg.LeaseTTL}).Deadline(); dl >= cfg.LeaseTTL || dl < cfg.LeaseTTL/2 {
		t.Errorf("fence deadline %s for a lease of %s", dl, cfg.LeaseTTL)
	}
	if d := time.Since(cut); d > 2*cfg.LeaseTTL {
		t.Errorf("fenced %s after heartbeats stopped, lease TTL %s", d, cfg.LeaseTTL)
	}
	if h.drv.state(soloUID) != driver.StateRunning || h.drv.count("stop", soloUID) != 0 {
		t.Error("an instance outside groups was stopped")
	}
	// While fenced, the member is not started again.
	n := h.reconciles(mkey)
	waitFor(t, "reconciles while fenced", func() bool { return h.reconciles(mkey) >= n+2 })
	if c := h.drv.count("start", memberUID); c != 1 {
		t.Fatalf("member started %d times while fenced, want 1", c)
	}

	// Heartbeats work again: the member runs again, without counting a
	// crash.
	h.failBeats(false)
	waitFor(t, "member running again", func() bool { return h.drv.state(memberUID) == driver.StateRunning })
	inst := h.waitInstance(t, mkey, "Running", phaseIs(api.PhaseRunning))
	if inst.Status.RestartCount != 0 || inst.Status.Reason != "" {
		t.Errorf("after fencing: restartCount %d reason %q", inst.Status.RestartCount, inst.Status.Reason)
	}
	waitFor(t, "Fenced event", func() bool { return slices.Contains(h.eventReasons(t, "web-1"), "Fenced") })
}

// TestDeletedWhileAgentDown: an instance the control plane deleted (a
// lost host's instance, finalized) while its agent was away is removed
// from the host before anything starts, and a new instance with the same
// name on another host is not touched.
func TestDeletedWhileAgentDown(t *testing.T) {
	h := newHarness(t)
	stop := h.start(t, h.config())
	key, oldUID := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	stop()

	h.remove(t, key)
	repl := newInstance("web")
	repl.Status.Host = "host-2"
	repl.Status.Phase = api.PhaseRunning
	_, newUID := h.place(t, repl)
	before := h.get(t, key)

	h.start(t, h.config())
	waitFor(t, "old instance removed from the host", func() bool { return !h.drv.has(oldUID) })
	if got := h.drv.opsFor(oldUID); got[len(got)-1] != "delete" || slices.Contains(got[2:], "start") {
		t.Errorf("driver calls for the deleted instance = %v, want it deleted and never started again", got)
	}
	if ops := h.drv.opsFor(newUID); len(ops) != 0 {
		t.Errorf("driver calls for the replacement on another host = %v", ops)
	}
	if after := h.get(t, key); after.Metadata.ResourceVersion != before.Metadata.ResourceVersion {
		t.Errorf("the replacement on another host was written: %+v", after.Status)
	}
}

// TestHostLostCorrected: the control plane marks a lost host's instances
// (reason HostLost, Ready=false); the agent, back, reports what is.
func TestHostLostCorrected(t *testing.T) {
	h := newHarness(t)
	stop := h.start(t, h.config())
	run, _ := h.place(t, newInstance("web"))
	job := newInstance("job")
	job.Spec.RestartPolicy = api.RestartNever
	done, jobUID := h.place(t, job)
	h.waitInstance(t, run, "Running", phaseIs(api.PhaseRunning))
	h.waitInstance(t, done, "Running", phaseIs(api.PhaseRunning))
	h.drv.exit(jobUID, 0)
	h.waitInstance(t, done, "Exited", func(i *api.Instance) bool { return i.Status.Reason == api.ReasonExited })
	stop()

	lost := func(i *api.Instance) {
		cond := api.Condition{Type: api.ConditionReady, Status: false, Reason: api.ReasonHostLost, Message: "host host-1 is NotReady"}
		i.Status.Conditions = api.SetCondition(i.Status.Conditions, cond, time.Now())
		cond.Type = api.ConditionHealthy
		i.Status.Conditions = api.SetCondition(i.Status.Conditions, cond, time.Now())
		if i.Status.Phase != api.PhaseStopped {
			i.Status.Reason, i.Status.Message = api.ReasonHostLost, cond.Message
		}
	}
	h.edit(t, run, lost)
	h.edit(t, done, lost)

	h.start(t, h.config())
	inst := h.waitInstance(t, run, "Ready again", func(i *api.Instance) bool {
		c := api.FindCondition(i.Status.Conditions, api.ConditionReady)
		return c.Status && i.Status.Reason == ""
	})
	if inst.Status.Phase != api.PhaseRunning || !healthOf(inst).Status {
		t.Errorf("after the host came back: %+v", inst.Status)
	}
	inst = h.waitInstance(t, done, "Ready reason back", func(i *api.Instance) bool {
		return api.FindCondition(i.Status.Conditions, api.ConditionReady).Reason == api.ReasonExited
	})
	if inst.Status.Phase != api.PhaseStopped || inst.Status.Reason != api.ReasonExited {
		t.Errorf("exited instance after the host came back: %+v", inst.Status)
	}
	if n := h.drv.count("start", jobUID); n != 1 {
		t.Errorf("the exited instance was started %d times, want 1", n)
	}
}
