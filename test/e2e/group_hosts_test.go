package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/driver/container"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// groupInstances lists, through the API, every instance labelled as a
// member of group name in the default project.
func (c *cloud) groupInstances(name string) ([]api.Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items, _, err := client.List[api.Instance](ctx, c.clientAs(c.admin), api.InstanceKind, "default",
		client.ListOptions{LabelSelector: api.LabelGroup + "=" + name})
	return items, err
}

// startSpreadGroup makes a cloud of hosts hosts running group name of
// count busybox members, spread softly over the hosts, and returns the
// members once all run.
func startSpreadGroup(tb testing.TB, hosts int, name string, count int) (*netCloud, map[string]api.Instance) {
	tb.Helper()
	nc := newNetCloud(tb, hosts)
	nc.ouro("group", "create", name, "--image", "busybox", "--flavor", "tiny", "--count", fmt.Sprint(count),
		"--anti-affinity", "soft", "--", "sleep", "3600")
	ms := nc.waitMembersRunning(name, count)
	if on := membersByHost(ms); len(on) < 2 {
		tb.Fatalf("members are not spread over hosts: %v", on)
	}
	return nc, ms
}

// waitMembersRunning waits until group name has count members, each
// Running in runc, and the group counts them healthy; it is like
// waitGroupRunning, but bears with runc list's passing failures while
// containers start, and takes any names (replacements get the lowest
// index free when they are made, which may be above count).
func (c *cloud) waitMembersRunning(name string, count int) map[string]api.Instance {
	c.t.Helper()
	ms := map[string]api.Instance{}
	wait.ForDetail(c.t, 2*time.Minute, fmt.Sprintf("group %s: %d members running", name, count), func() (bool, string) {
		items, err := c.groupInstances(name)
		if err != nil {
			return false, err.Error()
		}
		cs, err := runcContainers()
		if err != nil {
			return false, err.Error()
		}
		state := map[string]string{}
		for _, rc := range cs {
			state[rc.ID] = rc.Status
		}
		clear(ms)
		for _, in := range items {
			n := in.Metadata.Name
			if in.Status.Phase != api.PhaseRunning || in.Metadata.DeletionTimestamp != nil || state[in.Metadata.UID] != "running" {
				return false, fmt.Sprintf("%s is %s, in runc %q", n, in.Status.Phase, state[in.Metadata.UID])
			}
			ms[n] = in
		}
		if len(ms) != count {
			return false, fmt.Sprintf("%d members", len(ms))
		}
		g := c.group(name)
		return g.Status.Healthy == count && g.Status.Desired == count,
			fmt.Sprintf("status %d healthy of %d", g.Status.Healthy, g.Status.Desired)
	})
	return ms
}

// membersByHost groups members' names by host.
func membersByHost(ms map[string]api.Instance) map[string][]string {
	on := map[string][]string{}
	for n, in := range ms {
		on[in.Status.Host] = append(on[in.Status.Host], n)
	}
	return on
}

// busiestHost returns the agent of the host running most members.
func (nc *netCloud) busiestHost(ms map[string]api.Instance) *agentProc {
	nc.t.Helper()
	on := membersByHost(ms)
	var best *agentProc
	for _, h := range nc.hosts {
		if best == nil || len(on[h.name]) > len(on[best.name]) {
			best = h
		}
	}
	if len(on[best.name]) == 0 {
		nc.t.Fatalf("no host runs members: %v", on)
	}
	return best
}

// powerCut stops a host as a power cut would: SIGKILL to its agent, then
// to its containers' shims and to every container's processes, so no
// process of the host gets to clean up or report. What a power cut would
// also lose but this keeps: runc's state of the (now stopped) containers
// and the host's network namespaces; the returning agent must deal with
// both.
func powerCut(tb testing.TB, a *agentProc) {
	tb.Helper()
	a.kill()
	for _, pid := range processesMentioning(a.dir) { // the shims
		syscall.Kill(pid, syscall.SIGKILL)
	}
	var ids []string
	var cs []runcContainer
	wait.ForDetail(tb, 10*time.Second, "runc list", func() (bool, string) {
		var err error
		cs, err = runcContainers()
		return err == nil, fmt.Sprint(err)
	})
	for _, c := range cs {
		if strings.HasPrefix(c.Bundle, a.dir) {
			ids = append(ids, c.ID)
			exec.Command(container.PreferredRuntime(), "kill", c.ID, "KILL").Run()
		}
	}
	wait.ForDetail(tb, 30*time.Second, "containers of "+a.name+" dead", func() (bool, string) {
		for _, id := range ids {
			if c := runcState(tb, id); c != nil && c.Status == "running" {
				return false, id + " still running"
			}
		}
		return true, ""
	})
}

// groupRecovered reports whether group name has exactly want members, all
// Running and none of them deleting, on dead or among the old UIDs.
func groupRecovered(items []api.Instance, want int, dead string, old map[string]bool) (bool, string) {
	var desc []string
	ok := len(items) == want
	for _, in := range items {
		desc = append(desc, fmt.Sprintf("%s %s on %s", in.Metadata.Name, in.Status.Phase, in.Status.Host))
		if in.Status.Phase != api.PhaseRunning || in.Metadata.DeletionTimestamp != nil ||
			in.Status.Host == dead || old[in.Metadata.UID] {
			ok = false
		}
	}
	sort.Strings(desc)
	return ok, fmt.Sprintf("%d members: %s", len(items), strings.Join(desc, ", "))
}

// TestGroupSurvivesHostLoss cuts the power of a host running members of a
// group of 4 spread over 3 hosts: the group runs 4 members on the other
// hosts again, and when the host comes back, its agent removes what is
// left of the replaced members and no member is duplicated.
func TestGroupSurvivesHostLoss(t *testing.T) {
	nc, ms := startSpreadGroup(t, 3, "web", 4)
	dead := nc.busiestHost(ms)
	lost := map[string]bool{}
	for _, in := range ms {
		if in.Status.Host == dead.name {
			lost[in.Metadata.UID] = true
		}
	}
	t.Logf("members by host %v; cutting the power of %s", membersByHost(ms), dead.name)

	start := time.Now()
	powerCut(t, dead)
	wait.ForDetail(t, 60*time.Second, "4 members running on the other hosts", func() (bool, string) {
		items, err := nc.groupInstances("web")
		if err != nil {
			return false, err.Error()
		}
		return groupRecovered(items, 4, dead.name, lost)
	})
	t.Logf("host power cut → 4 members running elsewhere: %v", time.Since(start).Round(10*time.Millisecond))
	survivors := map[string]int{} // uid → container pid
	items, err := nc.groupInstances("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range items {
		rc := runcState(t, in.Metadata.UID)
		if rc == nil || rc.Status != "running" {
			t.Fatalf("%s has no running container: %+v", in.Metadata.Name, rc)
		}
		survivors[in.Metadata.UID] = rc.Pid
	}

	// The host comes back with its data dir: the replaced members go from
	// it, and nothing is added to the group.
	nc.startAgent(dead)
	for uid := range lost {
		wait.ForDetail(t, 60*time.Second, "nothing left of replaced member "+uid+" on "+dead.name, func() (bool, string) {
			l := remains(dead.dir, uid)
			return len(l) == 0, strings.Join(l, "; ")
		})
	}
	items, err = nc.groupInstances("web")
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := groupRecovered(items, 4, dead.name, lost); !ok {
		t.Fatalf("after %s returned: %s", dead.name, msg)
	}
	for _, in := range items {
		if pid, ok := survivors[in.Metadata.UID]; !ok {
			t.Errorf("member %s (%s) is new after the host returned", in.Metadata.Name, in.Metadata.UID)
		} else if rc := runcState(t, in.Metadata.UID); rc == nil || rc.Pid != pid {
			t.Errorf("member %s's container was touched: %+v, was pid %d", in.Metadata.Name, rc, pid)
		}
	}
	if g := nc.group("web"); g.Status.Members != 4 || g.Status.Running != 4 || g.Status.Desired != 4 {
		t.Errorf("group status %+v", g.Status)
	}
}

// httpdCommand serves body at /healthz on port 8080.
func httpdCommand(body string) []string {
	return []string{"sh", "-c", "mkdir -p /www && echo " + body + " > /www/healthz && exec httpd -f -p 8080 -h /www"}
}

// serving fetches /healthz from every member of group name that has an
// address and is not being deleted, all at once, from the namespace at
// path router, and returns what each answered (members that did not
// answer are left out). A member being deleted may still answer during
// its grace period, but no longer counts as available.
func (nc *netCloud) serving(router, name string) (map[string]string, error) {
	items, err := nc.groupInstances(name)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[string]string{}
	for _, in := range items {
		if len(in.Status.Interfaces) == 0 || in.Status.Interfaces[0].IP == "" || in.Metadata.DeletionTimestamp != nil {
			continue
		}
		wg.Add(1)
		go func(n, ip string) {
			defer wg.Done()
			out, err := runIn(router, 5*time.Second, "busybox", "timeout", "2", "busybox", "wget", "-q", "-O", "-",
				"http://"+ip+":8080/healthz")
			if err == nil {
				mu.Lock()
				got[n] = strings.TrimSpace(out)
				mu.Unlock()
			}
		}(in.Metadata.Name, in.Status.Interfaces[0].IP)
	}
	wg.Wait()
	return got, nil
}

// waitServing waits until group name has count members, each answering
// body.
func (nc *netCloud) waitServing(router, name string, count int, body string) {
	nc.t.Helper()
	wait.ForDetail(nc.t, 3*time.Minute, fmt.Sprintf("%d members of %s serving %s", count, name, body), func() (bool, string) {
		items, err := nc.groupInstances(name)
		if err != nil {
			return false, err.Error()
		}
		got, err := nc.serving(router, name)
		if err != nil {
			return false, err.Error()
		}
		if len(items) != count || len(got) != count {
			return false, fmt.Sprintf("%d members, answers %v", len(items), got)
		}
		for _, b := range got {
			if b != body {
				return false, fmt.Sprintf("answers %v", got)
			}
		}
		return true, ""
	})
}

// TestGroupRollingUpdate rolls a new command out to a group of 4 web
// servers with maxUnavailable 1 and maxSurge 0, and back with an undo,
// while a poller fetches every member's /healthz over and over: in every
// round at least 3 members that are not being deleted answer.
func TestGroupRollingUpdate(t *testing.T) {
	nc := newNetCloud(t, 1)
	h := nc.hosts[0]
	nc.ouro(append([]string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "4",
		"--health", "http:8080/healthz", "--max-unavailable", "1", "--max-surge", "0", "--"}, httpdCommand("v1")...)...)
	nc.waitMembersRunning("web", 4)
	var router string
	wait.ForDetail(t, 30*time.Second, "router namespace of the default network", func() (bool, string) {
		router = routerNetns(h, nc.networkVNI("", "default"))
		return router != "", fmt.Sprint(mountsUnder(agentNetnsDir(h.dir)))
	})
	nc.waitServing(router, "web", 4, "v1")

	// The poller: one round fetches every member at once.
	ctx, stop := context.WithCancel(context.Background())
	var rounds []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			got, err := nc.serving(router, "web")
			if err != nil {
				continue // the API is asked again next round
			}
			rounds = append(rounds, len(got))
		}
	}()
	stopPoller := func() []int {
		stop()
		<-done
		return rounds
	}
	t.Cleanup(func() { stop(); <-done })

	start := time.Now()
	nc.ouro(append([]string{"group", "update", "web", "--"}, httpdCommand("v2")...)...)
	nc.ouro("group", "rollout", "status", "web", "--watch", "--timeout", "4m")
	if st := nc.ouro("group", "rollout", "status", "web"); !strings.Contains(st, "4 of 4 members updated") || !strings.Contains(st, "Complete") {
		t.Errorf("rollout status: %q", st)
	}
	nc.waitServing(router, "web", 4, "v2")
	t.Logf("rollout of v2: %v", time.Since(start).Round(10*time.Millisecond))

	start = time.Now()
	nc.ouro("group", "rollout", "undo", "web")
	nc.ouro("group", "rollout", "status", "web", "--watch", "--timeout", "4m")
	nc.waitServing(router, "web", 4, "v1")
	t.Logf("undo to v1: %v", time.Since(start).Round(10*time.Millisecond))

	seen := stopPoller()
	if len(seen) < 10 {
		t.Fatalf("the poller made only %d rounds: %v", len(seen), seen)
	}
	least := seen[0]
	for _, n := range seen {
		least = min(least, n)
	}
	t.Logf("%d poller rounds, fewest members (not being deleted) answering in a round: %d", len(seen), least)
	if least < 3 {
		t.Errorf("a round saw only %d members answering (maxUnavailable 1 of 4): %v", least, seen)
	}
	if g := nc.group("web"); g.Status.Revision != 3 || g.Status.Rollout != api.RolloutComplete {
		t.Errorf("after the undo: revision %d, rollout %s, want revision 3 Complete", g.Status.Revision, g.Status.Rollout)
	}
}

// loadCommand burns CPU while /tmp/load exists and sleeps otherwise.
var loadCommand = []string{"sh", "-c",
	"while :; do if [ -e /tmp/load ]; then i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; else sleep 1; fi; done"}

// TestGroupAutoscales loads the one member of a group with min 1, max 3,
// target 50% CPU: the group scales out; without the load it scales back in
// to 1, and never has fewer than 1 running member.
func TestGroupAutoscales(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro(append([]string{"group", "create", "auto", "--image", "busybox", "--flavor", "tiny", "--count", "1",
		"--min", "1", "--max", "3", "--target-cpu", "50", "--scale-in-stabilization", "5s", "--"}, loadCommand...)...)
	c.waitMembersRunning("auto", 1)

	// Watch the running members over the whole run.
	ctx, stop := context.WithCancel(context.Background())
	fewest, most := 1, 1
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			items, err := c.groupInstances("auto")
			if err != nil {
				continue
			}
			n := 0
			for _, in := range items {
				if in.Status.Phase == api.PhaseRunning && in.Metadata.DeletionTimestamp == nil {
					n++
				}
			}
			fewest, most = min(fewest, n), max(most, n)
			time.Sleep(100 * time.Millisecond) // a polling period, not synchronisation
		}
	}()
	t.Cleanup(func() { stop(); <-done })

	execIn := func(member string, argv ...string) {
		t.Helper()
		c.ouro(append([]string{"instance", "exec", member, "--"}, argv...)...)
	}
	start := time.Now()
	execIn("auto-0", "touch", "/tmp/load")
	wait.ForDetail(t, 3*time.Minute, "the group scaled out", func() (bool, string) {
		g := c.group("auto")
		return g.Status.Desired > 1 && g.Status.Running > 1, fmt.Sprintf("desired %d running %d", g.Status.Desired, g.Status.Running)
	})
	t.Logf("load → scaled out: %v", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	for n := range c.groupMembers("auto") {
		execIn(n, "rm", "-f", "/tmp/load")
	}
	wait.ForDetail(t, 3*time.Minute, "the group scaled in to 1", func() (bool, string) {
		g := c.group("auto")
		items, err := c.groupInstances("auto")
		if err != nil {
			return false, err.Error()
		}
		return g.Status.Desired == 1 && len(items) == 1, fmt.Sprintf("desired %d, %d members", g.Status.Desired, len(items))
	})
	t.Logf("no load → scaled in: %v", time.Since(start).Round(100*time.Millisecond))
	stop()
	<-done
	if fewest < 1 || most < 2 || most > 3 {
		t.Errorf("running members went from %d to %d, want within 1 to 3 and above 1", fewest, most)
	}
	out := c.ouro("events", "--for", "group/auto")
	if !strings.Contains(out, "ScaledOut") || !strings.Contains(out, "ScaledIn") {
		t.Errorf("events of the group lack ScaledOut and ScaledIn:\n%s", out)
	}
}

// TestGroupRejectsInvalidSpecs: the CLI and the server refuse invalid
// groups, name the field, and create nothing.
func TestGroupRejectsInvalidSpecs(t *testing.T) {
	c := newCloud(t)
	c.importBusybox()
	base := []string{"group", "create", "bad", "--image", "busybox", "--flavor", "tiny"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--count", "2", "--min", "3", "--max", "2", "--target-cpu", "50"}, "--min"},
		{[]string{"--count", "-1"}, "--count"},
		{[]string{"--health", "udp:53"}, "--health"},
	} {
		out, errOut, err := c.run(nil, append(base, tc.args...)...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("ouro group create %v: %v, stderr %q, stdout %q; want an error naming %s", tc.args, err, errOut, out, tc.want)
		}
	}
	// The server checks too, whatever the client.
	cl := c.clientAs(c.admin)
	for _, tc := range []struct {
		edit func(*api.InstanceGroup)
		want string
	}{
		{func(g *api.InstanceGroup) {
			g.Spec.Autoscaling = &api.Autoscaling{Min: 3, Max: 2, TargetCPUPercent: 50}
		}, "spec.autoscaling.min"},
		{func(g *api.InstanceGroup) { g.Spec.Count = -1 }, "spec.count"},
		{func(g *api.InstanceGroup) { g.Spec.HealthCheck = api.HealthCheck{Kind: "udp", Port: 53} }, "spec.healthCheck.kind"},
	} {
		g := &api.InstanceGroup{Kind: api.InstanceGroupKind.Name, Metadata: api.ObjectMeta{Name: "bad", Project: "default"},
			Spec: api.InstanceGroupSpec{Count: 1, Template: api.InstanceTemplate{Image: "busybox", Flavor: "tiny"}}}
		tc.edit(g)
		_, err := cl.Create(context.Background(), g, client.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %+v: %v, want an error naming %s", g.Spec, err, tc.want)
		}
	}
	if items := listJSON[api.InstanceGroup](c, "group", "list"); len(items) != 0 {
		t.Errorf("groups after invalid creates: %+v", items)
	}
	if items := c.listInstances("default"); len(items) != 0 {
		t.Errorf("instances after invalid creates: %+v", items)
	}
}
