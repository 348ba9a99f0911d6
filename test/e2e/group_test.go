package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// groupMembers returns the members of a group through the CLI, by name.
func (c *cloud) groupMembers(name string) map[string]api.Instance {
	c.t.Helper()
	var l api.List[api.Instance]
	out := c.ouro("group", "members", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		c.t.Fatalf("group members -o json: %v in %q", err, out)
	}
	m := map[string]api.Instance{}
	for _, in := range l.Items {
		m[in.Metadata.Name] = in
	}
	return m
}

// group reads a group through the CLI.
func (c *cloud) group(name string) api.InstanceGroup {
	c.t.Helper()
	var g api.InstanceGroup
	out := c.ouro("group", "get", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		c.t.Fatalf("group get -o json: %v in %q", err, out)
	}
	return g
}

// waitGroupRunning waits until group name has exactly the named members,
// each Running in runc, and reports them healthy.
func (c *cloud) waitGroupRunning(name string, want ...string) map[string]api.Instance {
	c.t.Helper()
	sort.Strings(want)
	var ms map[string]api.Instance
	wait.ForDetail(c.t, 2*time.Minute, fmt.Sprintf("group %s members %v running", name, want), func() (bool, string) {
		ms = c.groupMembers(name)
		var got []string
		for n, in := range ms {
			got = append(got, n)
			if in.Status.Phase != api.PhaseRunning || in.Metadata.DeletionTimestamp != nil {
				return false, fmt.Sprintf("%s is %s", n, in.Status.Phase)
			}
			if rc := runcState(c.t, in.Metadata.UID); rc == nil || rc.Status != "running" {
				return false, n + " not running in runc"
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return false, "members " + strings.Join(got, " ")
		}
		g := c.group(name)
		return g.Status.Healthy == len(want) && g.Status.Desired == len(want),
			fmt.Sprintf("status %d healthy of %d", g.Status.Healthy, g.Status.Desired)
	})
	return ms
}

func TestGroupOfContainersScalesAndGoesWithItsGroup(t *testing.T) {
	c := newCloud(t)
	a := c.addAgent("host-1")
	c.importBusybox()

	c.ouro("group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "3", "--wait", "--", "sleep", "3600")
	c.waitGroupRunning("web", "web-0", "web-1", "web-2")
	if st := c.ouro("group", "rollout", "status", "web"); !strings.Contains(st, "3 of 3 members updated") || !strings.Contains(st, "Complete") {
		t.Errorf("rollout status: %q", st)
	}

	c.ouro("group", "scale", "web", "5")
	all := c.waitGroupRunning("web", "web-0", "web-1", "web-2", "web-3", "web-4")

	c.ouro("group", "scale", "web", "2")
	c.waitGroupRunning("web", "web-0", "web-1")
	for _, n := range []string{"web-2", "web-3", "web-4"} {
		uid := all[n].Metadata.UID
		wait.ForDetail(t, time.Minute, "nothing left of "+n, func() (bool, string) {
			l := leftovers(t, a.dir, uid)
			return len(l) == 0, strings.Join(l, "; ")
		})
	}
	if list := c.ouro("group", "list"); !strings.Contains(list, "web") {
		t.Errorf("group list: %q", list)
	}

	kept := c.groupMembers("web")
	// --wait returns once every member is gone.
	if out := c.ouro("group", "delete", "web", "--wait", "--timeout", "1m"); !strings.Contains(out, "instancegroup/web: every member is gone") {
		t.Fatalf("group delete --wait said %q", out)
	}
	if items := c.listInstances("default"); len(items) != 0 {
		t.Fatalf("%d instances left after group delete --wait", len(items))
	}
	for n, in := range kept {
		wait.ForDetail(t, time.Minute, "nothing left of "+n, func() (bool, string) {
			l := leftovers(t, a.dir, in.Metadata.UID)
			return len(l) == 0, strings.Join(l, "; ")
		})
	}
}
