package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// listInstances returns the instances of a project through the CLI.
func (c *cloud) listInstances(project string) []api.Instance {
	c.t.Helper()
	var l api.List[api.Instance]
	out := c.ouro("instance", "list", "--project", project, "-o", "json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		// The CLI may print a bare array.
		if err2 := json.Unmarshal([]byte(out), &l.Items); err2 != nil {
			c.t.Fatalf("instance list -o json: %v in %q", err, out)
		}
	}
	return l.Items
}

func TestFiveContainersRunStopStartDelete(t *testing.T) {
	c := newCloud(t)
	a := c.addAgent("host-1")
	c.importBusybox()

	c.ouro("instance", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "5", "--wait",
		"--", "sh", "-c", "echo started; exec sleep 3600")
	items := c.listInstances("default")
	if len(items) != 5 {
		t.Fatalf("want 5 instances, got %d", len(items))
	}
	for _, in := range items {
		if in.Status.Phase != api.PhaseRunning || in.Status.Host != "host-1" {
			t.Errorf("%s: phase %s on %q, want Running on host-1", in.Metadata.Name, in.Status.Phase, in.Status.Host)
		}
		if rc := runcState(t, in.Metadata.UID); rc == nil || rc.Status != "running" {
			t.Errorf("%s: runc does not run it: %+v", in.Metadata.Name, rc)
		}
	}

	wait.ForDetail(t, 30*time.Second, "logs of web-1", func() (bool, string) {
		out := c.ouro("instance", "logs", "web-1")
		return strings.Contains(out, "started"), out
	})
	if got := strings.TrimSpace(c.ouro("instance", "exec", "web-1", "--", "cat", "/etc/hostname")); got != "web-1" {
		t.Errorf("hostname inside web-1 = %q", got)
	}
	if _, _, err := c.run(nil, "instance", "exec", "web-1", "--", "sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exec exit code: got %v, want exit status 3", err)
	}

	// Stop and start: the writable layer survives like a disk.
	c.ouro("instance", "exec", "web-1", "--", "sh", "-c", "echo kept > /data.txt")
	c.ouro("instance", "stop", "web-1")
	stopped := c.waitPhase("default", "web-1", api.PhaseStopped)
	if rc := runcState(t, stopped.Metadata.UID); rc != nil && rc.Status == "running" {
		t.Fatalf("web-1 stopped but runc still runs it")
	}
	c.ouro("instance", "start", "web-1")
	c.waitPhase("default", "web-1", api.PhaseRunning)
	if got := strings.TrimSpace(c.ouro("instance", "exec", "web-1", "--", "cat", "/data.txt")); got != "kept" {
		t.Errorf("after stop/start /data.txt = %q, want kept", got)
	}

	// Reboot gives a new process.
	before := runcState(t, stopped.Metadata.UID)
	c.ouro("instance", "reboot", "web-1")
	wait.ForDetail(t, 60*time.Second, "reboot of web-1", func() (bool, string) {
		in, err := c.instance("default", "web-1")
		if err != nil {
			return false, err.Error()
		}
		rc := runcState(t, in.Metadata.UID)
		return in.Status.Phase == api.PhaseRunning && in.Status.ObservedReboots >= in.Spec.RebootRequests &&
			rc != nil && before != nil && rc.Pid != before.Pid, string(in.Status.Phase)
	})

	// Delete leaves nothing behind.
	victim, _ := c.instance("default", "web-2")
	c.ouro("instance", "delete", "web-2", "--wait")
	if _, err := c.instance("default", "web-2"); !api.IsNotFound(err) {
		t.Fatalf("web-2 after delete --wait: %v, want NotFound", err)
	}
	wait.ForDetail(t, 30*time.Second, "nothing left of web-2", func() (bool, string) {
		l := leftovers(t, a.dir, victim.Metadata.UID)
		return len(l) == 0, strings.Join(l, "; ")
	})
}

func TestAgentKilledContainersKeepRunningAndAreAdopted(t *testing.T) {
	c := newCloud(t)
	a := c.addAgent("host-1")
	c.importBusybox()
	c.ouro("instance", "create", "db", "--image", "busybox", "--flavor", "tiny", "--count", "2", "--wait",
		"--", "sh", "-c", "echo boot; exec sleep 3600")
	pids := map[string]int{}
	for _, in := range c.listInstances("default") {
		rc := runcState(t, in.Metadata.UID)
		if rc == nil || rc.Status != "running" {
			t.Fatalf("%s not running in runc", in.Metadata.Name)
		}
		pids[in.Metadata.UID] = rc.Pid
	}

	a.kill()
	for uid, pid := range pids {
		if rc := runcState(t, uid); rc == nil || rc.Status != "running" || rc.Pid != pid {
			t.Fatalf("container %s did not survive the agent's death: %+v", uid, rc)
		}
	}
	c.startAgent(a)
	// A new instance running proves the restarted agent reconciles again.
	c.ouro("instance", "create", "probe", "--image", "busybox", "--flavor", "tiny", "--wait", "--", "sleep", "3600")
	for _, in := range c.listInstances("default") {
		pid, old := pids[in.Metadata.UID]
		if !old {
			continue
		}
		if in.Status.Phase != api.PhaseRunning {
			t.Errorf("%s: phase %s after agent restart, want Running", in.Metadata.Name, in.Status.Phase)
		}
		if rc := runcState(t, in.Metadata.UID); rc == nil || rc.Pid != pid {
			t.Errorf("%s was restarted by the new agent (pid %d → %+v)", in.Metadata.Name, pid, rc)
		}
		if logs := c.ouro("instance", "logs", in.Metadata.Name); strings.Count(logs, "boot") != 1 {
			t.Errorf("%s logs show %d boots, want 1: %q", in.Metadata.Name, strings.Count(logs, "boot"), logs)
		}
	}
}

func TestServerKilledNothingLost(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro("instance", "create", "keep", "--image", "busybox", "--flavor", "tiny", "--count", "3", "--wait", "--", "sleep", "3600")
	before := map[string]string{}
	for _, in := range c.listInstances("default") {
		before[in.Metadata.Name] = in.Metadata.UID
	}

	c.server.kill()
	c.startServer()

	after := c.listInstances("default")
	if len(after) != len(before) {
		t.Fatalf("after a server crash %d instances, want %d", len(after), len(before))
	}
	for _, in := range after {
		if before[in.Metadata.Name] != in.Metadata.UID {
			t.Errorf("%s changed uid across the server restart", in.Metadata.Name)
		}
		if in.Status.Phase != api.PhaseRunning {
			t.Errorf("%s: phase %s after server restart", in.Metadata.Name, in.Status.Phase)
		}
	}
	// The agent finds the new server by itself and new work gets done.
	c.ouro("instance", "create", "after", "--image", "busybox", "--flavor", "tiny", "--wait", "--", "sleep", "3600")
	if got := c.waitPhase("default", "after", api.PhaseRunning); got.Status.Host != "host-1" {
		t.Errorf("after: host %q", got.Status.Host)
	}
}

func TestRetriedCreateMakesOneInstance(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	cl := c.clientAs(c.admin)
	ctx := context.Background()
	var uids []string
	for i := 0; i < 3; i++ {
		in := &api.Instance{Metadata: api.ObjectMeta{Name: "once", Project: "default"},
			Spec: api.InstanceSpec{Image: "busybox", Flavor: "tiny", Command: []string{"sleep", "3600"}}}
		existed, err := cl.Create(ctx, in, clientCreateKey("retry-key-1"))
		if err != nil {
			t.Fatalf("create #%d: %v", i+1, err)
		}
		if existed != (i > 0) {
			t.Errorf("create #%d: existed = %v", i+1, existed)
		}
		uids = append(uids, in.Metadata.UID)
	}
	if uids[0] != uids[1] || uids[1] != uids[2] {
		t.Errorf("retries returned different instances: %v", uids)
	}
	// The same key with a different request is refused.
	other := &api.Instance{Metadata: api.ObjectMeta{Name: "twice", Project: "default"},
		Spec: api.InstanceSpec{Image: "busybox", Flavor: "small"}}
	if _, err := cl.Create(ctx, other, clientCreateKey("retry-key-1")); err == nil {
		t.Errorf("reusing an idempotency key for another request was accepted")
	}
	if n := len(c.listInstances("default")); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}
