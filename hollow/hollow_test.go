package hollow_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

const waitLong = 60 * time.Second

// instance returns a tiny instance of the test image.
func instance(name string, tolerations ...string) *api.Instance {
	return &api.Instance{
		Metadata: api.ObjectMeta{Name: name, Project: hollowtest.Project, Labels: map[string]string{"test": "hollow"}},
		Spec:     api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny", Tolerations: tolerations},
	}
}

func get(t *testing.T, c *hollowtest.Cloud, name string) (*api.Instance, error) {
	t.Helper()
	var in api.Instance
	err := c.Admin.Get(context.Background(), api.InstanceKind, hollowtest.Project, name, &in)
	return &in, err
}

func waitPhase(t *testing.T, c *hollowtest.Cloud, name string, phase api.InstancePhase) *api.Instance {
	t.Helper()
	var in *api.Instance
	wait.ForDetail(t, waitLong, name+" "+string(phase), func() (bool, string) {
		var err error
		if in, err = get(t, c, name); err != nil {
			return false, err.Error()
		}
		return in.Status.Phase == phase, fmt.Sprintf("phase %q on %q", in.Status.Phase, in.Status.Host)
	})
	return in
}

func TestHollowHostsRunTolerantInstances(t *testing.T) {
	const n = 20
	ctx := context.Background()
	c := hollowtest.Start(t)
	dataDir := filepath.Join(c.Dir, "hollow")
	cfg := hollow.Config{Count: n, DataDir: dataDir, NamePrefix: "hh"}
	h := c.RunHollow(t, cfg)
	hosts := c.WaitHostsReady(t, h, "hh", n, waitLong)

	for _, hst := range hosts {
		if hst.Metadata.Labels[api.LabelHollow] != "true" || !slices.Contains(hst.Spec.Taints, api.TaintHollow) {
			t.Errorf("host %s: labels %v taints %v, want the hollow label and taint", hst.Metadata.Name, hst.Metadata.Labels, hst.Spec.Taints)
		}
		if hst.Status.Capacity != hollow.DefaultCapacity || !slices.Equal(hst.Status.Drivers, hollow.Drivers) {
			t.Errorf("host %s: capacity %+v drivers %v", hst.Metadata.Name, hst.Status.Capacity, hst.Status.Drivers)
		}
	}

	// Instances that tolerate the taint run on hollow hosts.
	const m = 30
	for i := range m {
		if _, err := c.Admin.Create(ctx, instance(fmt.Sprintf("tol-%d", i), api.TaintHollow), client.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// One that does not never lands on a hollow host: there is no other.
	if _, err := c.Admin.Create(ctx, instance("intolerant"), client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for i := range m {
		in := waitPhase(t, c, fmt.Sprintf("tol-%d", i), api.PhaseRunning)
		if !strings.HasPrefix(in.Status.Host, "hh-") {
			t.Errorf("%s runs on %q, want a hollow host", in.Metadata.Name, in.Status.Host)
		}
		if in.Status.StartedAt == nil {
			t.Errorf("%s is Running without startedAt", in.Metadata.Name)
		}
		if ready := api.FindCondition(in.Status.Conditions, api.ConditionReady); ready == nil || !ready.Status {
			t.Errorf("%s is Running without a true Ready condition: %+v", in.Metadata.Name, in.Status.Conditions)
		}
		used[in.Status.Host] = true
	}
	if len(used) < 2 {
		t.Errorf("%d instances all went to %v, want them spread over hosts", m, used)
	}
	wait.ForDetail(t, waitLong, "the scheduler to give up on the intolerant instance", func() (bool, string) {
		in, err := get(t, c, "intolerant")
		if err != nil {
			return false, err.Error()
		}
		cond := api.FindCondition(in.Status.Conditions, api.ConditionScheduled)
		return cond != nil && !cond.Status, fmt.Sprintf("conditions %+v", in.Status.Conditions)
	})
	if in, err := get(t, c, "intolerant"); err != nil || in.Status.Host != "" || in.Status.Phase != api.PhasePending {
		t.Errorf("intolerant instance: host %q phase %q (%v); want Pending and unplaced", in.Status.Host, in.Status.Phase, err)
	}

	// Stop, start and delete go through the hollow host.
	if err := c.Admin.Action(ctx, hollowtest.Project, "tol-0", "stop", &api.Instance{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "tol-0", api.PhaseStopped)
	if err := c.Admin.Action(ctx, hollowtest.Project, "tol-0", "start", &api.Instance{}); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, c, "tol-0", api.PhaseRunning)
	if err := c.Admin.Delete(ctx, api.InstanceKind, hollowtest.Project, "tol-1"); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLong, "tol-1 removed", func() (bool, string) {
		in, err := get(t, c, "tol-1")
		if api.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("phase %q err %v", in.Status.Phase, err)
	})

	// A restart on the same data dir takes the same hosts back: no new
	// ones, and no second join token needed.
	if err := h.Stop(); err != nil {
		t.Fatalf("hollow.Run: %v", err)
	}
	files, err := os.ReadDir(filepath.Join(dataDir, "hollow-hosts"))
	if err != nil || len(files) != n {
		t.Fatalf("credentials files: %d (%v), want %d", len(files), err, n)
	}
	cfg.JoinToken = "ouro_unusable"
	h = c.RunHollow(t, cfg)
	wait.ForDetail(t, waitLong, "restarted hosts to report", func() (bool, string) {
		if exited, err := h.Exited(); exited {
			t.Fatalf("hollow.Run after a restart: %v", err)
		}
		// A new instance runs only if the restarted hosts watch again.
		_, err := get(t, c, "after-restart")
		if api.IsNotFound(err) {
			_, err = c.Admin.Create(ctx, instance("after-restart", api.TaintHollow), client.CreateOptions{})
		}
		if err != nil {
			return false, err.Error()
		}
		in, err := get(t, c, "after-restart")
		return err == nil && in.Status.Phase == api.PhaseRunning, fmt.Sprintf("%v", err)
	})
	all, _, err := client.ListAll[api.Host](ctx, c.Admin, api.HostKind, "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Errorf("%d hosts after a restart, want %d", len(all), n)
	}
}

func TestHollowRefusesARealHostsName(t *testing.T) {
	ctx := context.Background()
	c := hollowtest.Start(t)
	// A real host "real-0" joined before (no hollow label or taint).
	jt := c.JoinToken(t)
	h := c.RunHollow(t, hollow.Config{Count: 1, NamePrefix: "real", JoinToken: jt})
	c.WaitHostsReady(t, h, "real", 1, waitLong)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	// The host's status may still be written (its last report, the
	// controller marking it NotReady): read and update again on a
	// conflict, as a client does.
	wait.ForDetail(t, waitLong, "real-0 made a real host", func() (bool, string) {
		var hst api.Host
		if err := c.Admin.Get(ctx, api.HostKind, "", "real-0", &hst); err != nil {
			t.Fatal(err)
		}
		hst.Spec.Taints = nil
		delete(hst.Metadata.Labels, api.LabelHollow)
		err := c.Admin.Update(ctx, &hst)
		if err != nil && !api.IsConflict(err) {
			t.Fatal(err)
		}
		return err == nil, fmt.Sprint(err)
	})
	h = c.RunHollow(t, hollow.Config{Count: 1, NamePrefix: "real", JoinToken: jt, DataDir: filepath.Join(c.Dir, "other")})
	wait.ForDetail(t, waitLong, "hollow.Run to refuse", func() (bool, string) {
		exited, _ := h.Exited()
		return exited, "still running"
	})
	if _, err := h.Exited(); err == nil || !strings.Contains(err.Error(), "not a hollow host") {
		t.Errorf("hollow.Run on a real host's name = %v, want it to refuse", err)
	}
}
