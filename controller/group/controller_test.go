package group_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

func TestGroupCreatesScalesAndDeletesMembers(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	r.addHost("h2")
	r.create(newGroup("web", 3))
	r.eventually("3 members", func() bool { return r.settled("web", 3) })
	ms := r.members("web")
	if got := names(ms); got != "web-0 web-1 web-2" {
		t.Fatalf("members %q", got)
	}
	g := r.group("web")
	for _, in := range ms {
		l := in.Metadata.Labels
		if l[api.LabelGroup] != "web" || l[api.LabelGroupUID] != g.Metadata.UID || l[api.LabelRevision] != "1" || l["app"] != "web" {
			t.Errorf("%s labels %v", in.Metadata.Name, l)
		}
		if in.Spec.Image != "default/busybox" || in.Spec.Resources.VCPUs != 1 || len(in.Status.Interfaces) != 1 {
			t.Errorf("%s was not made as an API create makes instances: %+v", in.Metadata.Name, in.Spec)
		}
		if p := in.Spec.Placement; p == nil || p.AntiAffinityKey != "web" || p.AntiAffinity != api.AntiAffinitySoft {
			t.Errorf("%s placement %+v", in.Metadata.Name, p)
		}
	}
	if g.Status.Revision != 1 || g.Status.Rollout != api.RolloutComplete || g.Status.Desired != 3 {
		t.Errorf("status %+v", g.Status)
	}

	r.edit("web", func(g *api.InstanceGroup) { g.Spec.Count = 5 })
	r.eventually("5 members", func() bool { return r.settled("web", 5) })
	r.edit("web", func(g *api.InstanceGroup) { g.Spec.Count = 2 })
	r.eventually("2 members", func() bool { return r.settled("web", 2) })
	if got := names(r.members("web")); got != "web-0 web-1" {
		t.Errorf("after scaling in, members %q: the highest indexes go first", got)
	}
	for _, want := range []string{"MemberCreated: created web-4", "MemberDeleted: deleted web-4: scaling in"} {
		if !r.hasEvent("web", strings.SplitN(want, ":", 2)[0], strings.SplitN(want, ": ", 2)[1]) {
			t.Errorf("no event %q in %q", want, r.events("web"))
		}
	}

	if err := r.cl.Delete(context.Background(), api.InstanceGroupKind, "default", "web"); err != nil {
		t.Fatal(err)
	}
	r.eventually("members gone with the group", func() bool { return len(r.members("web")) == 0 })
}

func TestRollingUpdateRespectsSurgeAndAvailability(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	r.create(newGroup("app", 3))
	r.eventually("3 members", func() bool { return r.settled("app", 3) })

	// Watch every member write from here on, to see the rollout's worst
	// moments exactly.
	// The starting point is the list the watch continues from: a later
	// read would count members whose older events the watch replays.
	objs, meta, err := r.st.List(context.Background(), api.InstanceKind, "default", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from, err := strconv.ParseInt(meta.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := r.st.Watch(ctx, api.InstanceKind, "default", from)
	if err != nil {
		t.Fatal(err)
	}
	type extremes struct{ maxExisting, minAvailable int }
	result := make(chan extremes, 1)
	go func() {
		existing := map[string]bool{}
		available := map[string]bool{}
		for _, o := range objs {
			in := o.(*api.Instance)
			if in.Metadata.Labels[api.LabelGroup] != "app" || in.Metadata.DeletionTimestamp != nil {
				continue
			}
			existing[in.Metadata.Name] = true
			if in.Status.Phase == api.PhaseRunning {
				available[in.Metadata.Name] = true
			}
		}
		x := extremes{len(existing), len(available)}
		for ev := range ch {
			in, ok := ev.Object.(*api.Instance)
			if !ok || in.Metadata.Labels[api.LabelGroup] != "app" {
				continue
			}
			n := in.Metadata.Name
			if ev.Type == api.Deleted || in.Metadata.DeletionTimestamp != nil {
				delete(existing, n)
				delete(available, n)
			} else {
				existing[n] = true
				if in.Status.Phase == api.PhaseRunning {
					available[n] = true
				} else {
					delete(available, n)
				}
			}
			x.maxExisting = max(x.maxExisting, len(existing))
			x.minAvailable = min(x.minAvailable, len(available))
		}
		result <- x
	}()

	r.edit("app", func(g *api.InstanceGroup) { g.Spec.Template.Env = []string{"VERSION=2"} })
	r.eventually("rollout of revision 2", func() bool {
		g := r.group("app")
		return g.Status.Revision == 2 && g.Status.Rollout == api.RolloutComplete && r.settled("app", 3)
	})
	cancel()
	x := <-result
	if x.maxExisting > 4 {
		t.Errorf("up to %d members existed at once; count 3 + maxSurge 1 allows 4", x.maxExisting)
	}
	if x.minAvailable < 3 {
		t.Errorf("only %d members were available at one point; maxUnavailable 0 keeps 3", x.minAvailable)
	}
	for name, in := range r.members("app") {
		if in.Metadata.Labels[api.LabelRevision] != "2" || len(in.Spec.Env) != 1 {
			t.Errorf("%s is not of revision 2: %v %v", name, in.Metadata.Labels, in.Spec.Env)
		}
	}
	for _, reason := range []string{"RolloutStarted", "RolloutComplete"} {
		if !r.hasEvent("app", reason, "revision 2") {
			t.Errorf("no %s event for revision 2 in %q", reason, r.events("app"))
		}
	}
	if g := r.group("app"); len(g.Status.Revisions) != 2 || g.Status.Revisions[0].Template.Env != nil {
		t.Errorf("revisions %+v", g.Status.Revisions)
	}
}

func TestRolloutPausesAtItsDeadlineAndUndoRecovers(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	r.mu.Lock()
	r.behave = func(in *api.Instance) (bool, float64) {
		return !strings.Contains(strings.Join(in.Spec.Env, " "), "BROKEN=1"), -1
	}
	r.mu.Unlock()
	g := newGroup("svc", 2)
	g.Spec.HealthCheck = api.HealthCheck{Kind: api.HealthHTTP, Port: 8080, Path: "/healthz"}
	g.Spec.Update.ProgressDeadlineSeconds = 1
	r.create(g)
	r.eventually("2 healthy members", func() bool { return r.settled("svc", 2) })
	if hc := r.members("svc")["svc-0"].Spec.HealthCheck; hc == nil || hc.Port != 8080 || hc.Path != "/healthz" {
		t.Fatalf("member health check %+v", hc)
	}

	r.edit("svc", func(g *api.InstanceGroup) { g.Spec.Template.Env = []string{"BROKEN=1"} })
	r.eventually("rollout paused", func() bool {
		g := r.group("svc")
		return g.Status.Rollout == api.RolloutPaused && g.Spec.Paused
	})
	g = r.group("svc")
	if !strings.HasPrefix(g.Status.RolloutReason, "ProgressDeadlineExceeded: svc-2 not healthy: connection refused") {
		t.Errorf("rollout reason %q", g.Status.RolloutReason)
	}
	if g.Status.Healthy != 2 {
		t.Errorf("%d healthy members during the broken rollout, want the 2 old ones", g.Status.Healthy)
	}
	if !r.hasEvent("svc", "RolloutPaused", "svc-2 not healthy") {
		t.Errorf("no RolloutPaused event in %q", r.events("svc"))
	}

	// Undo: the first revision's template again, and resume.
	r.edit("svc", func(g *api.InstanceGroup) {
		g.Spec.Template = g.Status.Revisions[0].Template
		g.Spec.Paused = false
	})
	r.eventually("undo complete", func() bool {
		g := r.group("svc")
		return g.Status.Revision == 3 && g.Status.Rollout == api.RolloutComplete && r.settled("svc", 2)
	})
	ms := r.members("svc")
	if got := names(ms); got != "svc-0 svc-1" {
		t.Errorf("after the undo members are %q: the old ones, same template, should stay", got)
	}
}

func TestMembersOfALostHostAreReplaced(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	r.addHost("h2")
	r.create(newGroup("db", 4))
	r.eventually("4 members", func() bool { return r.settled("db", 4) })
	victim := r.members("db")["db-0"].Status.Host
	var lost []string
	for n, in := range r.members("db") {
		if in.Status.Host == victim {
			lost = append(lost, n)
		}
	}
	survivor := map[string]string{"h1": "h2", "h2": "h1"}[victim]

	died := time.Now()
	r.stopHost(victim)
	r.eventually("4 members on "+survivor, func() bool {
		if !r.settled("db", 4) {
			return false
		}
		for _, in := range r.members("db") {
			if in.Status.Host != survivor {
				return false
			}
		}
		return true
	})
	t.Logf("host %s died; %d members back on %s after %v (lease 2 s)", victim, 4, survivor, time.Since(died).Round(10*time.Millisecond))
	for _, n := range lost {
		if !r.hasEvent("db", "MemberReplaced", n+" (HostLost)") {
			t.Errorf("no MemberReplaced event for %s in %q", n, r.events("db"))
		}
	}
	// The lost members' objects are gone and their addresses free: one
	// claim per member on the default network.
	var netw api.Network
	if err := r.st.Get(context.Background(), api.NetworkKind, "default", "default", &netw); err != nil {
		t.Fatal(err)
	}
	claims, err := r.st.ListClaims(context.Background(), "ip/"+netw.Metadata.UID+"/")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 4 {
		t.Errorf("%d addresses claimed for 4 members: %v", len(claims), claims)
	}
}

func TestStatefulMemberComesBackWithItsNameAndAddress(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	g := newGroup("kv", 1)
	g.Spec.Stateful = true
	r.create(g)
	r.eventually("1 member", func() bool { return r.settled("kv", 1) })
	old := r.members("kv")["kv-0"]
	ip := old.Status.Interfaces[0].IP
	r.eventually("address kept in status", func() bool {
		a := r.group("kv").Status.MemberAddresses["kv-0"]
		return len(a) == 1 && a[0] == ip
	})

	r.addHost("h2")
	r.stopHost("h1")
	r.eventually("kv-0 back", func() bool {
		in := r.members("kv")["kv-0"]
		return in != nil && in.Metadata.UID != old.Metadata.UID && r.settled("kv", 1)
	})
	in := r.members("kv")["kv-0"]
	if in.Status.Host != "h2" || len(in.Spec.Networks) != 1 || in.Spec.Networks[0].IP != ip {
		t.Errorf("replacement on %s asks for %+v, want %s on h2", in.Status.Host, in.Spec.Networks, ip)
	}
	if !r.hasEvent("kv", "MemberReplaced", "kv-0 (HostLost)") {
		t.Errorf("no MemberReplaced event in %q", r.events("kv"))
	}
}

func TestAutoscalingFollowsCPU(t *testing.T) {
	r := newRig(t)
	r.addHost("h1")
	load := 90.0
	r.mu.Lock()
	r.behave = func(*api.Instance) (bool, float64) { return true, load }
	r.mu.Unlock()
	setLoad := func(l float64) {
		r.mu.Lock()
		load = l
		r.mu.Unlock()
	}
	g := newGroup("auto", 2)
	g.Spec.Autoscaling = &api.Autoscaling{Min: 1, Max: 3, TargetCPUPercent: 50, ScaleInStabilizationSeconds: 1}
	r.create(g)
	// 2 members at 90% of a 50% target recommend ceil(3.6) = 4, capped
	// at max 3.
	r.eventually("scaled out to 3", func() bool { return r.settled("auto", 3) && r.group("auto").Status.Desired == 3 })
	if !r.hasEvent("auto", "ScaledOut", "from 2 to 3 members: mean CPU 90.0%") {
		t.Errorf("no ScaledOut event in %q", r.events("auto"))
	}
	setLoad(10)
	r.eventually("scaled in to 1", func() bool { return r.settled("auto", 1) && r.group("auto").Status.Desired == 1 })
	if !r.hasEvent("auto", "ScaledIn", "from 3 to 1 members: mean CPU 10.0%") {
		t.Errorf("no ScaledIn event in %q", r.events("auto"))
	}
	if g := r.group("auto"); g.Status.LastScaleTime == nil || g.Spec.Count != 2 {
		t.Errorf("status %+v, spec.count %d", g.Status, g.Spec.Count)
	}
}
