package group

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func intp(n int) *int { return &n }

// testGroup returns group "web" with the given count and update policy.
func testGroup(count int, surge, unavail *int) *api.InstanceGroup {
	return &api.InstanceGroup{
		Metadata: api.ObjectMeta{Name: "web", Project: "p", UID: "uid-web"},
		Spec: api.InstanceGroupSpec{Count: count,
			Template: api.InstanceTemplate{Image: "p/img", Flavor: "tiny"},
			Update:   api.UpdatePolicy{MaxSurge: surge, MaxUnavailable: unavail}},
	}
}

// members parses "index:flag,flag" descriptions into judged members of
// group web. Flags: old (older template), down (not available), lost
// (host lost), failed (failed for good), deleting, orphan.
func members(t *testing.T, descs ...string) []*Member {
	t.Helper()
	var out []*Member
	for _, d := range descs {
		idx, flags, _ := strings.Cut(d, ":")
		i, err := strconv.Atoi(idx)
		if err != nil {
			t.Fatalf("bad member %q", d)
		}
		m := &Member{Index: i, Current: true, Available: true,
			Inst: &api.Instance{Metadata: api.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Project: "p"}}}
		for _, f := range strings.Split(flags, ",") {
			switch f {
			case "":
			case "old":
				m.Current = false
			case "down":
				m.Available = false
			case "lost":
				m.Available, m.HostDown, m.Condemned = false, true, WhyHostLost
			case "failed":
				m.Available, m.Condemned = false, WhyFailed
			case "deleting":
				m.Deleting = true
			case "hostdown":
				m.HostDown, m.Available = true, false
			case "orphan":
				m.Orphan = true
			default:
				t.Fatalf("bad flag %q in %q", f, d)
			}
		}
		out = append(out, m)
	}
	return out
}

// summary renders a step as "delete web-2/ScaleIn web-1/Rollout; create 3 4".
func summary(st Step) string {
	var dels, creates []string
	for _, d := range st.Delete {
		dels = append(dels, d.Member.Name()+"/"+d.Why)
	}
	for _, c := range st.Create {
		s := strconv.Itoa(c.Index)
		if len(c.Addresses) > 0 {
			s += "@" + strings.Join(c.Addresses, "+")
		}
		creates = append(creates, s)
	}
	sort.Strings(dels)
	out := "delete " + strings.Join(dels, " ") + "; create " + strings.Join(creates, " ")
	if len(st.Blocked) > 0 {
		out += "; blocked " + strings.Join(st.Blocked, " ")
	}
	return out
}

func TestPlanStateless(t *testing.T) {
	none := func(string) bool { return false }
	tests := []struct {
		name        string
		desired     int
		surge, unav *int
		paused      bool
		members     []string
		taken       []string
		want        string
	}{
		{"create from nothing", 3, nil, nil, false, nil, nil, "delete ; create 0 1 2"},
		{"steady", 3, nil, nil, false, []string{"0", "1", "2"}, nil, "delete ; create "},
		{"scale in highest first", 1, nil, nil, false, []string{"0", "1", "2"}, nil, "delete web-1/ScaleIn web-2/ScaleIn; create "},
		{"scale in unavailable first", 2, nil, nil, false, []string{"0", "1:down", "2"}, nil, "delete web-1/ScaleIn; create "},
		{"scale out fills gaps", 4, nil, nil, false, []string{"0", "2"}, nil, "delete ; create 1 3"},
		{"lost member replaced under a new index", 3, nil, nil, false, []string{"0", "1:lost", "2"}, nil, "delete web-1/HostLost; create 3"},
		{"failed member replaced", 2, nil, nil, false, []string{"0:failed", "1"}, nil, "delete web-0/Failed; create 2"},
		{"deletion on a lost host finished", 2, nil, nil, false, []string{"0", "1", "2:deleting,hostdown"}, nil, "delete web-2/HostLost; create "},
		{"deletion under way left alone", 2, nil, nil, false, []string{"0", "1", "2:deleting"}, nil, "delete ; create "},
		{"deleting member does not count", 3, nil, nil, false, []string{"0", "1", "2:deleting"}, nil, "delete ; create 3"},
		{"orphan deleted", 1, nil, nil, false, []string{"0:orphan"}, nil, "delete web-0/Orphan; create 1"},
		{"name used outside the group skipped", 2, nil, nil, false, []string{"0"}, []string{"web-1"}, "delete ; create 2"},
		{"rollout surge 1: one new first", 3, nil, nil, false, []string{"0:old", "1:old", "2:old"}, nil, "delete ; create 3"},
		{"rollout waits for the new one", 3, nil, nil, false, []string{"0:old", "1:old", "2:old", "3:down"}, nil, "delete ; create "},
		{"rollout deletes an old one when the new is up", 3, nil, nil, false, []string{"0:old", "1:old", "2:old", "3"}, nil, "delete web-2/Rollout; create "},
		{"rollout continues", 3, nil, nil, false, []string{"0:old", "1:old", "3"}, nil, "delete ; create 2"},
		{"rollout unavailable 1 surge 0", 3, intp(0), intp(1), false, []string{"0:old", "1:old", "2:old"}, nil, "delete web-2/Rollout; create "},
		{"rollout unavailable 1 surge 0 refills", 3, intp(0), intp(1), false, []string{"0:old", "1:old"}, nil, "delete ; create 2"},
		{"rollout surge 2 unavailable 1", 3, intp(2), intp(1), false, []string{"0:old", "1:old", "2:old"}, nil, "delete web-2/Rollout; create 3 4"},
		{"rollout removes unavailable old first", 3, nil, nil, false, []string{"0:old,down", "1:old", "2:old", "3"}, nil, "delete web-0/Rollout; create "},
		{"rollout finishes", 3, nil, nil, false, []string{"0:old", "3", "4", "5"}, nil, "delete web-0/Rollout; create "},
		{"rollout with scale in", 1, nil, nil, false, []string{"0:old", "1:old", "2:old"}, nil, "delete web-1/Rollout web-2/Rollout; create "},
		{"paused rollout only scales", 3, nil, nil, true, []string{"0:old", "1:old"}, nil, "delete ; create 2"},
		{"paused rollout scales in old first", 1, nil, nil, true, []string{"0", "1:old"}, nil, "delete web-1/ScaleIn; create "},
		{"to zero", 0, nil, nil, false, []string{"0", "1"}, nil, "delete web-0/ScaleIn web-1/ScaleIn; create "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGroup(tt.desired, tt.surge, tt.unav)
			g.Spec.Paused = tt.paused
			taken := none
			if tt.taken != nil {
				taken = func(n string) bool { return slices.Contains(tt.taken, n) }
			}
			got := summary(Plan(g, members(t, tt.members...), tt.desired, taken))
			if got != tt.want {
				t.Errorf("Plan = %q\n          want %q", got, tt.want)
			}
		})
	}
}

func TestPlanStateful(t *testing.T) {
	tests := []struct {
		name    string
		desired int
		unav    *int
		members []string
		taken   []string
		want    string
	}{
		{"create with remembered addresses", 3, nil, nil, nil, "delete ; create 0 1@10.0.0.7 2"},
		{"lost member deleted, name kept", 3, nil, []string{"0", "1:lost", "2"}, nil, "delete web-1/HostLost; create "},
		{"replacement once the old one is gone", 3, nil, []string{"0", "2"}, nil, "delete ; create 1@10.0.0.7"},
		{"rollout one at a time, highest first", 3, nil, []string{"0:old", "1:old", "2:old"}, nil, "delete web-2/Rollout; create "},
		{"rollout waits while one is missing", 3, nil, []string{"0:old", "1:old"}, nil, "delete ; create 2"},
		{"rollout waits while one is not available", 3, nil, []string{"0:old", "1:old", "2:down"}, nil, "delete ; create "},
		{"rollout with maxUnavailable 2", 3, intp(2), []string{"0:old", "1:old", "2:old"}, nil, "delete web-1/Rollout web-2/Rollout; create "},
		{"unavailable old member replaced at once", 3, nil, []string{"0:old,down", "1:old", "2"}, nil, "delete web-0/Rollout; create "},
		{"scale in from the top", 1, nil, []string{"0", "1", "2"}, nil, "delete web-1/ScaleIn web-2/ScaleIn; create "},
		{"name held outside the group", 1, nil, nil, []string{"web-0"}, "delete ; create ; blocked web-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGroup(tt.desired, nil, tt.unav)
			g.Spec.Stateful = true
			g.Status.MemberAddresses = map[string][]string{"web-1": {"10.0.0.7"}}
			taken := func(n string) bool { return slices.Contains(tt.taken, n) }
			got := summary(Plan(g, members(t, tt.members...), tt.desired, taken))
			if got != tt.want {
				t.Errorf("Plan = %q\n          want %q", got, tt.want)
			}
		})
	}
}

// inst returns a member instance of group web.
func inst(name, uid, rev string, phase api.InstancePhase, host string, edit func(*api.Instance)) *api.Instance {
	in := &api.Instance{
		Metadata: api.ObjectMeta{Name: name, Project: "p",
			Labels: map[string]string{api.LabelGroup: "web", api.LabelGroupUID: uid, api.LabelRevision: rev}},
		Status: api.InstanceStatus{Phase: phase, Host: host},
	}
	if edit != nil {
		edit(in)
	}
	return in
}

func hostIn(name string, phase api.HostPhase, since time.Time) *api.Host {
	return &api.Host{Metadata: api.ObjectMeta{Name: name}, Status: api.HostStatus{Phase: phase,
		Conditions: []api.Condition{{Type: api.ConditionReady, Status: phase == api.HostReady, LastTransitionTime: since}}}}
}

func TestJudge(t *testing.T) {
	g := testGroup(3, nil, nil)
	g.Spec.HealthCheck = api.HealthCheck{Kind: api.HealthHTTP, Port: 80, Path: "/"}
	oldT := g.Spec.Template
	oldT.Image = "p/old"
	revs := map[int64]api.InstanceTemplate{1: oldT, 2: g.Spec.Template, 3: g.Spec.Template}
	hosts := map[string]*api.Host{
		"up":     hostIn("up", api.HostReady, t0),
		"down":   hostIn("down", api.HostNotReady, t0.Add(-time.Minute)),
		"recent": hostIn("recent", api.HostNotReady, t0.Add(-time.Second)),
	}
	healthyCond := func(ok bool) func(*api.Instance) {
		return func(in *api.Instance) {
			in.Status.Conditions = []api.Condition{{Type: api.ConditionHealthy, Status: ok, Message: "connection refused"}}
		}
	}
	never := func(phase api.InstancePhase, reason string) func(*api.Instance) {
		return func(in *api.Instance) { in.Spec.RestartPolicy, in.Status.Reason = api.RestartNever, reason }
	}
	tests := []struct {
		name string
		in   *api.Instance
		want string // index current available deleting hostdown condemned orphan
	}{
		{"healthy current", inst("web-0", "uid-web", "2", api.PhaseRunning, "up", healthyCond(true)), "0 cur avail"},
		{"old revision", inst("web-1", "uid-web", "1", api.PhaseRunning, "up", healthyCond(true)), "1 avail"},
		{"same template under an undo's number", inst("web-1", "uid-web", "3", api.PhaseRunning, "up", healthyCond(true)), "1 cur avail"},
		{"revision gone from history", inst("web-1", "uid-web", "9", api.PhaseRunning, "up", healthyCond(true)), "1 avail"},
		{"running but failing its check", inst("web-2", "uid-web", "2", api.PhaseRunning, "up", healthyCond(false)), "2 cur"},
		{"running, not probed yet", inst("web-2", "uid-web", "2", api.PhaseRunning, "up", nil), "2 cur"},
		{"host lost", inst("web-3", "uid-web", "2", api.PhaseRunning, "down", healthyCond(true)), "3 cur hostdown HostLost"},
		{"host NotReady within grace", inst("web-3", "uid-web", "2", api.PhaseRunning, "recent", healthyCond(true)), "3 cur avail"},
		{"host object gone", inst("web-3", "uid-web", "2", api.PhaseRunning, "ghost", nil), "3 cur hostdown HostLost"},
		{"pending, unplaced", inst("web-4", "uid-web", "2", api.PhasePending, "", nil), "4 cur"},
		{"failed, never restarted", inst("web-5", "uid-web", "2", api.PhaseFailed, "up", never(api.PhaseFailed, "")), "5 cur Failed"},
		{"exited, never restarted", inst("web-5", "uid-web", "2", api.PhaseStopped, "up", never(api.PhaseStopped, api.ReasonExited)), "5 cur Failed"},
		{"failed, restarted by its agent", inst("web-5", "uid-web", "2", api.PhaseFailed, "up", nil), "5 cur"},
		{"marked lost, host back", inst("web-5", "uid-web", "2", api.PhaseFailed, "up", never(api.PhaseFailed, api.ReasonHostLost)), "5 cur"},
		{"deleting on a lost host", inst("web-6", "uid-web", "2", api.PhaseTerminating, "down", func(in *api.Instance) {
			in.Metadata.DeletionTimestamp = &t0
		}), "6 cur deleting hostdown"},
		{"earlier group of the name", inst("web-7", "uid-old", "2", api.PhaseRunning, "up", healthyCond(true)), "7 cur avail orphan"},
		{"name not of the group's form", inst("web-x", "uid-web", "2", api.PhaseRunning, "up", healthyCond(true)), "-1 cur avail orphan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := Judge(g, []*api.Instance{tt.in}, revs, hosts, 10*time.Second, t0)
			m := ms[0]
			got := strconv.Itoa(m.Index)
			for _, f := range []struct {
				on   bool
				name string
			}{{m.Current, "cur"}, {m.Available, "avail"}, {m.Deleting, "deleting"}, {m.HostDown, "hostdown"},
				{m.Condemned != "", m.Condemned}, {m.Orphan, "orphan"}} {
				if f.on {
					got += " " + f.name
				}
			}
			if got != tt.want {
				t.Errorf("Judge = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJudgeUnprobedGroupTrustsRunning(t *testing.T) {
	g := testGroup(1, nil, nil)
	g.Spec.HealthCheck = api.HealthCheck{Kind: api.HealthRunning}
	revs := map[int64]api.InstanceTemplate{1: g.Spec.Template}
	ms := Judge(g, []*api.Instance{inst("web-0", "uid-web", "1", api.PhaseRunning, "h", nil)}, revs,
		map[string]*api.Host{"h": hostIn("h", api.HostReady, t0)}, 0, t0)
	if !ms[0].Available {
		t.Errorf("a running member of a group without probes is not available")
	}
}

func TestNextRevisions(t *testing.T) {
	g := testGroup(1, nil, nil)
	revs, cur, changed := NextRevisions(g, t0)
	if !changed || cur != 1 || len(revs) != 1 || revs[0].Template.Image != "p/img" {
		t.Fatalf("first = %v, %d, %v", revs, cur, changed)
	}
	g.Status.Revisions, g.Status.Revision = revs, cur
	if _, cur, changed := NextRevisions(g, t0); changed || cur != 1 {
		t.Fatalf("same template: %d, %v", cur, changed)
	}
	for i := 2; i <= 12; i++ {
		g.Spec.Template.Image = fmt.Sprintf("p/img%d", i)
		revs, cur, changed := NextRevisions(g, t0)
		if !changed || cur != int64(i) {
			t.Fatalf("change %d: revision %d, %v", i, cur, changed)
		}
		g.Status.Revisions, g.Status.Revision = revs, cur
	}
	if n := len(g.Status.Revisions); n != MaxRevisions || g.Status.Revisions[0].Revision != 3 || g.Status.Revisions[n-1].Revision != 12 {
		t.Errorf("kept %d revisions from %d to %d", n, g.Status.Revisions[0].Revision, g.Status.Revisions[n-1].Revision)
	}
	// An undo to an earlier template is a new revision.
	g.Spec.Template.Image = "p/img5"
	if _, cur, changed := NextRevisions(g, t0); !changed || cur != 13 {
		t.Errorf("undo: revision %d, %v", cur, changed)
	}
}

func TestMemberIndex(t *testing.T) {
	for name, want := range map[string]int{"web-0": 0, "web-12": 12, "web-012": -1, "web-": -1, "web-x": -1,
		"webs-1": -1, "web-1-2": -1, "other-1": -1, "web--1": -1} {
		if got := memberIndex("web", name); got != want {
			t.Errorf("memberIndex(%q) = %d, want %d", name, got, want)
		}
	}
}
