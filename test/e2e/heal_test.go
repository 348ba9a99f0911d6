package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestCrashLoopBacksOff runs a container whose command exits at once: the
// agent restarts it (restart policy Always, the default) with growing
// delays, 1 s, 2 s, 4 s, reporting reason CrashLoop and a growing
// restartCount.
func TestCrashLoopBacksOff(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro("instance", "create", "crash", "--image", "busybox", "--flavor", "tiny", "--", "sh", "-c", "exit 1")

	// Every run leaves its start time in the status (it stays during the
	// back-off that follows); every back-off shows its delay as
	// nextRestartAt − finishedAt.
	var starts []time.Time
	delays := map[int32]time.Duration{} // by restartCount while waiting
	wait.ForDetail(t, 2*time.Minute, "four runs of the crashing instance", func() (bool, string) {
		in, err := c.instance("default", "crash")
		if err != nil {
			return false, err.Error()
		}
		s := in.Status
		if s.StartedAt != nil && (len(starts) == 0 || !starts[len(starts)-1].Equal(*s.StartedAt)) {
			starts = append(starts, *s.StartedAt)
		}
		if s.Phase == api.PhaseStarting && s.Reason == api.ReasonCrashLoop {
			if s.NextRestartAt == nil || s.FinishedAt == nil || s.ExitCode == nil || *s.ExitCode != 1 {
				t.Fatalf("back-off status incomplete: %+v", s)
			}
			delays[s.RestartCount] = s.NextRestartAt.Sub(*s.FinishedAt)
		}
		return len(starts) >= 4 && s.RestartCount >= 3,
			fmt.Sprintf("phase %s reason %s restartCount %d: %s", s.Phase, s.Reason, s.RestartCount, s.Message)
	})
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if d, seen := delays[int32(n)]; seen && d != want {
			t.Errorf("back-off after restart %d = %s, want %s (all: %v)", n, d, want, delays)
		}
	}
	// The gaps between runs grow, and each is at least its back-off.
	for i := 1; i < 4; i++ {
		gap := starts[i].Sub(starts[i-1])
		if back := time.Second << (i - 1); gap < back {
			t.Errorf("run %d came %s after the previous, before its back-off of %s", i+1, gap, back)
		}
		if i > 1 && gap <= starts[i-1].Sub(starts[i-2]) {
			t.Errorf("gaps between runs do not grow: starts %v", starts)
		}
	}
	out := c.ouro("events", "--project", "default")
	if !strings.Contains(out, "BackOff") {
		t.Errorf("no BackOff events:\n%s", out)
	}
}

// TestHealthCheckFollowsTheServer runs busybox httpd with an http health
// check: the instance becomes Healthy, and unhealthy once the server is
// killed through exec (the instance itself keeps running).
func TestHealthCheckFollowsTheServer(t *testing.T) {
	nc := newNetCloud(t, 1)
	cl := nc.clientAs(nc.admin)
	in := &api.Instance{
		Kind:     api.InstanceKind.Name,
		Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Spec: api.InstanceSpec{
			Image: "busybox", Flavor: "tiny",
			// httpd goes to the background; sh stays pid 1.
			Command: []string{"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -p 8080 -h /www && exec sleep 3600"},
			HealthCheck: &api.HealthCheck{Kind: api.HealthHTTP, Port: 8080, Path: "/index.html",
				IntervalSeconds: 1, FailureThreshold: 2},
		},
	}
	if _, err := cl.Create(context.Background(), in, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nc.waitPhase("default", "web", api.PhaseRunning)
	healthy := func(want bool) *api.Condition {
		var cond *api.Condition
		wait.ForDetail(t, 60*time.Second, fmt.Sprintf("Healthy=%v", want), func() (bool, string) {
			cur, err := nc.instance("default", "web")
			if err != nil {
				return false, err.Error()
			}
			cond = api.FindCondition(cur.Status.Conditions, api.ConditionHealthy)
			return cond != nil && cond.Status == want, fmt.Sprintf("%+v", cond)
		})
		return cond
	}
	if c := healthy(true); c.Reason != "ProbeSucceeded" {
		t.Errorf("Healthy = %+v", c)
	}

	if out, err := nc.exec("", "web", "killall", "httpd"); err != nil {
		t.Fatalf("kill httpd: %v: %s", err, out)
	}
	c := healthy(false)
	if c.Reason != "ProbeFailed" || !strings.Contains(c.Message, "8080") {
		t.Errorf("Healthy = %+v, want ProbeFailed naming the port", c)
	}
	cur, err := nc.instance("default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Status.Phase != api.PhaseRunning || cur.Status.RestartCount != 0 {
		t.Errorf("an unhealthy instance is left running as it is: phase %s restartCount %d", cur.Status.Phase, cur.Status.RestartCount)
	}
}

// TestLostHostInstances kills a host's agent: its instances are marked
// HostLost; one deleted meanwhile is finalized by the control plane at
// once (so its name can be used again on another host), and the agent,
// when it returns, removes it from its host and reports the other as it
// is, leaving the new instance on the other host alone.
func TestLostHostInstances(t *testing.T) {
	nc := newNetCloud(t, 2)
	h1 := nc.hosts[0]
	old := nc.createOn(h1.name, vm{name: "web"})
	kept := nc.createOn(h1.name, vm{name: "db"})

	h1.kill()
	wait.ForDetail(t, 60*time.Second, h1.name+" NotReady", func() (bool, string) {
		var h api.Host
		if err := nc.clientAs(nc.admin).Get(context.Background(), api.HostKind, "", h1.name, &h); err != nil {
			return false, err.Error()
		}
		return h.Status.Phase == api.HostNotReady, string(h.Status.Phase)
	})
	wait.ForDetail(t, 30*time.Second, "db marked HostLost", func() (bool, string) {
		in, err := nc.instance("default", "db")
		if err != nil {
			return false, err.Error()
		}
		c := api.FindCondition(in.Status.Conditions, api.ConditionReady)
		return in.Status.Reason == api.ReasonHostLost && c != nil && !c.Status, fmt.Sprintf("%+v", in.Status)
	})

	// Delete on a lost host: finalized by the control plane, address
	// released; the name is free for a new instance elsewhere.
	start := time.Now()
	nc.ouro("instance", "delete", "web")
	wait.ForDetail(t, 30*time.Second, "web finalized", func() (bool, string) {
		_, err := nc.instance("default", "web")
		return api.IsNotFound(err), fmt.Sprint(err)
	})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("finalizing took %s", d)
	}
	if rc := runcState(t, old.Metadata.UID); rc == nil || rc.Status != "running" {
		t.Fatalf("the lost host's container should still run until its agent returns: %+v", rc)
	}
	repl := nc.create(vm{name: "web"})
	if repl.Status.Host == h1.name || repl.Metadata.UID == old.Metadata.UID {
		t.Fatalf("replacement %s on %s", repl.Metadata.UID, repl.Status.Host)
	}
	replState := runcState(t, repl.Metadata.UID)
	if replState == nil {
		t.Fatal("replacement has no container")
	}

	// The agent returns: the finalized instance goes from its host, the
	// kept one is reported as it runs.
	nc.startAgent(h1)
	wait.ForDetail(t, 60*time.Second, "nothing left of the finalized instance", func() (bool, string) {
		l := leftovers(t, h1.dir, old.Metadata.UID)
		return len(l) == 0, strings.Join(l, "; ")
	})
	wait.ForDetail(t, 30*time.Second, "db reported again", func() (bool, string) {
		in, err := nc.instance("default", "db")
		if err != nil {
			return false, err.Error()
		}
		c := api.FindCondition(in.Status.Conditions, api.ConditionReady)
		return in.Status.Phase == api.PhaseRunning && in.Status.Reason == "" && c != nil && c.Status, fmt.Sprintf("%+v", in.Status)
	})
	if rc := runcState(t, kept.Metadata.UID); rc == nil || rc.Status != "running" {
		t.Errorf("db's container did not survive: %+v", rc)
	}
	cur, err := nc.instance("default", "web")
	if err != nil || cur.Metadata.UID != repl.Metadata.UID || cur.Status.Phase != api.PhaseRunning {
		t.Fatalf("replacement after the agent returned: %+v, %v", cur, err)
	}
	if rc := runcState(t, repl.Metadata.UID); rc == nil || rc.Pid != replState.Pid {
		t.Errorf("the replacement's container was touched: %+v, was %+v", rc, replState)
	}
}
