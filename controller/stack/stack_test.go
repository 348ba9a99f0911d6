package stack_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestStackLifecycle applies a stack, applies it again, changes it,
// deletes an owned object by hand, drops a resource and deletes the stack.
func TestStackLifecycle(t *testing.T) {
	r := newRig(t)
	if err := r.apply(r.alice, "web", webSpec(2, 80)); err != nil {
		t.Fatal(err)
	}
	s := r.applied("web")
	if s.Spec.AppliedBy != "alice" {
		t.Errorf("appliedBy = %q, want alice", s.Spec.AppliedBy)
	}
	var order []string
	for _, e := range s.Status.Resources {
		order = append(order, e.Kind+"/"+e.Name)
		if e.UID == "" || (e.State != api.ResourceCreated && e.State != api.ResourceUpdated) {
			t.Errorf("resource %+v: want Created with a UID", e)
		}
	}
	// Created in dependency order, whatever the file order.
	for _, before := range [][2]string{{"Network/web", "Instance/db"}, {"SecurityGroup/web", "Instance/db"},
		{"Instance/db", "FloatingIP/db"}, {"Instance/db", "InstanceGroup/web"}, {"Network/web", "InstanceGroup/web"}} {
		if slices.Index(order, before[0]) > slices.Index(order, before[1]) {
			t.Errorf("resources created in order %v: %s after %s", order, before[0], before[1])
		}
	}
	if len(order) != 5 {
		t.Errorf("resources %v, want 5", order)
	}
	db := r.object(api.InstanceKind, "db").(*api.Instance)
	fip := r.object(api.FloatingIPKind, "db").(*api.FloatingIP)
	g := r.object(api.InstanceGroupKind, "web").(*api.InstanceGroup)
	ip := db.Status.Interfaces[0].IP
	if s.Status.Outputs["db"] != ip || s.Status.Outputs["url"] != "http://"+fip.Status.Address+"/" {
		t.Errorf("outputs %v, want db %s and the floating IP %s", s.Status.Outputs, ip, fip.Status.Address)
	}
	if g.Spec.Template.UserData != "backend="+ip {
		t.Errorf("group userData %q: reference not resolved to %s", g.Spec.Template.UserData, ip)
	}
	if db.Metadata.Labels[api.LabelStack] != "web" {
		t.Errorf("instance labels %v: no %s", db.Metadata.Labels, api.LabelStack)
	}
	owned := map[*api.Kind]string{api.NetworkKind: "web", api.SecurityGroupKind: "web", api.InstanceKind: "db",
		api.FloatingIPKind: "db", api.InstanceGroupKind: "web"}
	// The scheduler writes db's status (no host fits) on its own time:
	// versions are taken after it, so that only the stack's writes count.
	wait.For(t, waitLimit, "db's Scheduled condition", func() bool {
		in := r.object(api.InstanceKind, "db").(*api.Instance)
		return api.FindCondition(in.Status.Conditions, api.ConditionScheduled) != nil
	})
	before := r.versions(owned)

	// The same spec again (only a parameter shown for display differs,
	// so that the pass can be waited for): nothing is written.
	same := webSpec(2, 80)
	same.Parameters = map[string]string{"note": "again"}
	if err := r.apply(r.alice, "web", same); err != nil {
		t.Fatal(err)
	}
	r.applied("web")
	if after := r.versions(owned); !maps.Equal(before, after) {
		t.Errorf("applying the same spec wrote objects: %v → %v", before, after)
	}

	// The group's count and a rule change: exactly those two are updated.
	if err := r.apply(r.alice, "web", webSpec(3, 8080)); err != nil {
		t.Fatal(err)
	}
	r.applied("web")
	after := r.versions(owned)
	for key, rv := range before {
		changed := after[key] != rv
		if wantChanged := key == "InstanceGroup/web" || key == "SecurityGroup/web"; changed != wantChanged {
			t.Errorf("%s changed = %v, want %v", key, changed, wantChanged)
		}
	}
	if g := r.object(api.InstanceGroupKind, "web").(*api.InstanceGroup); g.Spec.Count != 3 {
		t.Errorf("group count %d, want 3", g.Spec.Count)
	}
	if sg := r.object(api.SecurityGroupKind, "web").(*api.SecurityGroup); len(sg.Spec.Rules) != 1 || sg.Spec.Rules[0].PortMin != 8080 {
		t.Errorf("rules %+v, want port 8080", sg.Spec.Rules)
	}

	// A hand change of an owned object is drift: put back.
	r.a.Update(t, api.InstanceGroupKind, "default", "web", func(o api.Object) { o.(*api.InstanceGroup).Spec.Count = 7 })
	wait.ForDetail(t, waitLimit, "count put back", func() (bool, string) {
		g := r.object(api.InstanceGroupKind, "web").(*api.InstanceGroup)
		return g.Spec.Count == 3, fmt.Sprint(g.Spec.Count)
	})

	// An owned instance deleted by hand: drift, and it comes back.
	oldUID := db.Metadata.UID
	if err := r.alice.Delete(ctx(t), api.InstanceKind, "default", "db"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitLimit, "instance db re-created", func() bool {
		o := r.object(api.InstanceKind, "db")
		return o != nil && o.Meta().UID != oldUID
	})
	s = r.applied("web")
	if !slices.ContainsFunc(s.Status.Drift, func(d api.StackDrift) bool {
		return d.Kind == "Instance" && d.Name == "db" && d.Corrected
	}) {
		t.Errorf("drift %+v: want the deleted instance db, corrected; status %+v; events %+v", s.Status.Drift, s.Status, r.a.Events(t, "default", "web"))
	}
	if !slices.ContainsFunc(s.Status.Drift, func(d api.StackDrift) bool {
		return d.Kind == "InstanceGroup" && d.Field == "spec.count" && d.Got == "7" && d.Want == "3"
	}) {
		t.Errorf("drift %+v: want the group's count 7 → 3", s.Status.Drift)
	}
	wait.For(t, waitLimit, "a Drift event", func() bool {
		return slices.ContainsFunc(r.a.Events(t, "default", "web"), func(e api.Event) bool { return e.Reason == "Drift" })
	})
	if n := r.count(api.InstanceKind, "web"); n != 1 {
		t.Errorf("%d instances of the stack, want 1", n)
	}

	// A resource dropped from the spec is deleted.
	dropped := webSpec(3, 8080)
	dropped.Resources = slices.DeleteFunc(dropped.Resources, func(r api.StackResource) bool { return r.Kind == "FloatingIP" })
	dropped.Outputs = map[string]string{"db": "${Instance/db.status.interfaces[0].ip}"}
	if err := r.apply(r.alice, "web", dropped); err != nil {
		t.Fatal(err)
	}
	s = r.applied("web")
	if r.object(api.FloatingIPKind, "db") != nil {
		t.Error("the dropped floating IP still exists")
	}
	if slices.ContainsFunc(s.Status.Resources, func(e api.StackResourceStatus) bool { return e.Kind == "FloatingIP" }) {
		t.Errorf("status still lists the floating IP: %+v", s.Status.Resources)
	}

	// Deleting the stack deletes everything it owns, then the stack.
	if err := r.alice.Delete(ctx(t), api.StackKind, "default", "web"); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLimit, "stack web gone", func() (bool, string) {
		s := r.stack("web")
		if s == nil {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %s, %d resources", s.Status.Phase, s.Status.Message, len(s.Status.Resources))
	})
	for k, n := range owned {
		if r.object(k, n) != nil {
			t.Errorf("%s %s left behind", k.Name, n)
		}
	}
}

// TestStackMetadata: the labels and annotations a resource sets are
// applied when the file changes them and put back when changed by hand;
// those it does not set are left alone.
func TestStackMetadata(t *testing.T) {
	r := newRig(t)
	sg := res("SecurityGroup", "meta", `{"rules":[]}`)
	sg.Labels, sg.Annotations = map[string]string{"tier": "front"}, map[string]string{"owner": "Web team <web@example.com>"}
	if err := r.apply(r.alice, "meta", api.StackSpec{Resources: []api.StackResource{sg}}); err != nil {
		t.Fatal(err)
	}
	r.applied("meta")
	got := r.object(api.SecurityGroupKind, "meta").Meta()
	if got.Labels["tier"] != "front" || got.Annotations["owner"] != "Web team <web@example.com>" {
		t.Fatalf("created with labels %v, annotations %v", got.Labels, got.Annotations)
	}
	// Changed in the file: applied, with what was added by hand kept.
	r.a.Update(t, api.SecurityGroupKind, "default", "meta", func(o api.Object) {
		o.Meta().Annotations["note"] = "by hand"
	})
	sg.Labels = map[string]string{"tier": "back"}
	if err := r.apply(r.alice, "meta", api.StackSpec{Resources: []api.StackResource{sg}}); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLimit, "label tier=back applied", func() (bool, string) {
		m := r.object(api.SecurityGroupKind, "meta").Meta()
		return m.Labels["tier"] == "back", fmt.Sprint(m.Labels)
	})
	if a := r.object(api.SecurityGroupKind, "meta").Meta().Annotations; a["note"] != "by hand" || a["owner"] == "" {
		t.Errorf("annotations after the change = %v, want the hand-made note and owner kept", a)
	}
	// Changed by hand: drift, put back.
	r.a.Update(t, api.SecurityGroupKind, "default", "meta", func(o api.Object) {
		delete(o.Meta().Annotations, "owner")
	})
	wait.ForDetail(t, waitLimit, "annotation owner put back", func() (bool, string) {
		m := r.object(api.SecurityGroupKind, "meta").Meta()
		return m.Annotations["owner"] == "Web team <web@example.com>", fmt.Sprint(m.Annotations)
	})
	// The status is written after the correction.
	wait.ForDetail(t, waitLimit, "drift of metadata.annotations.owner, corrected", func() (bool, string) {
		s := r.stack("meta")
		return slices.ContainsFunc(s.Status.Drift, func(d api.StackDrift) bool {
			return d.Field == "metadata.annotations.owner" && d.Got == "" && d.Corrected
		}), fmt.Sprintf("%+v", s.Status.Drift)
	})
}

// TestStackDriftReport: with drift: report a hand change is recorded and
// left alone.
func TestStackDriftReport(t *testing.T) {
	r := newRig(t)
	spec := api.StackSpec{Drift: api.DriftReport, Resources: []api.StackResource{
		res("SecurityGroup", "rep", `{"rules":[{"direction":"ingress","protocol":"tcp","portMin":22,"portMax":22,"cidr":"0.0.0.0/0"}]}`),
	}}
	if err := r.apply(r.alice, "rep", spec); err != nil {
		t.Fatal(err)
	}
	r.applied("rep")
	r.a.Update(t, api.SecurityGroupKind, "default", "rep", func(o api.Object) {
		o.(*api.SecurityGroup).Spec.Rules[0].PortMin = 2222
	})
	wait.ForDetail(t, waitLimit, "drift reported", func() (bool, string) {
		s := r.stack("rep")
		return len(s.Status.Drift) > 0, fmt.Sprintf("%+v", s.Status.Drift)
	})
	s := r.stack("rep")
	if d := s.Status.Drift[0]; d.Corrected || d.Field != "spec.rules[0].portMin" || d.Got != "2222" || d.Want != "22" {
		t.Errorf("drift %+v: want spec.rules[0].portMin 2222 (want 22), not corrected", d)
	}
	if sg := r.object(api.SecurityGroupKind, "rep").(*api.SecurityGroup); sg.Spec.Rules[0].PortMin != 2222 {
		t.Errorf("the hand change was undone: port %d", sg.Spec.Rules[0].PortMin)
	}
}

// TestStackCrashRecovery: a pass that stopped after recording a resource
// (Pending, no object) or after creating one (object, no record)
// converges without duplicates.
func TestStackCrashRecovery(t *testing.T) {
	r := newRig(t)
	// Recorded Pending, never created.
	r.a.Create(t, &api.Stack{Metadata: api.ObjectMeta{Name: "crash", Project: "default", Finalizers: []string{api.FinalizerStack}},
		Spec: api.StackSpec{AppliedBy: "alice", Resources: []api.StackResource{
			res("Network", "n1", `{"cidr":"10.31.0.0/24"}`), res("KeyPair", "k1", `{"publicKey":"`+testKey+`"}`)}},
		Status: api.StackStatus{Resources: []api.StackResourceStatus{{Kind: "Network", Name: "n1", State: api.ResourcePending}}}})
	// Created (with the label), never recorded.
	r.a.Create(t, &api.KeyPair{Metadata: api.ObjectMeta{Name: "k1", Project: "default", Labels: map[string]string{api.LabelStack: "crash"}},
		Spec: api.KeyPairSpec{PublicKey: testKey}})
	k1 := r.object(api.KeyPairKind, "k1")
	s := r.applied("crash")
	if len(s.Status.Resources) != 2 {
		t.Fatalf("resources %+v, want n1 and k1", s.Status.Resources)
	}
	for _, e := range s.Status.Resources {
		if e.UID == "" {
			t.Errorf("%+v has no UID", e)
		}
		if e.Kind == "KeyPair" && e.UID != k1.Meta().UID {
			t.Errorf("key pair re-made: UID %s, want %s", e.UID, k1.Meta().UID)
		}
	}
	if n := r.count(api.NetworkKind, "crash"); n != 1 {
		t.Errorf("%d networks, want 1", n)
	}

	// Created (an instance, whose image the server qualifies), recorded
	// Pending, the final record lost: taken as made, not written again.
	if err := r.apply(r.alice, "inst", api.StackSpec{Resources: []api.StackResource{
		res("Instance", "i1", `{"image":"busybox","flavor":"tiny","networks":[{"network":"default"}]}`)}}); err != nil {
		t.Fatal(err)
	}
	r.applied("inst")
	i1 := r.object(api.InstanceKind, "i1")
	r.a.Update(t, api.StackKind, "default", "inst", func(o api.Object) {
		s := o.(*api.Stack)
		s.Status.Resources[0].State, s.Status.Resources[0].Defaulted = api.ResourcePending, nil
		s.Status.Phase = api.StackApplying
	})
	s = r.applied("inst")
	if e := s.Status.Resources[0]; e.State != api.ResourceCreated || e.UID != i1.Meta().UID {
		t.Errorf("resource %+v, want Created with UID %s", e, i1.Meta().UID)
	}
	if o := r.object(api.InstanceKind, "i1"); o.Meta().ResourceVersion != i1.Meta().ResourceVersion {
		t.Error("the instance was written again")
	}
	if n := r.count(api.InstanceKind, "inst"); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
}

// TestStackRefusals: what a stack may not do, and who may not apply one.
func TestStackRefusals(t *testing.T) {
	r := newRig(t)

	// An object of the same name the stack does not own is never touched.
	r.a.Do(t, "POST", "/v1/projects/default/securitygroups", &api.SecurityGroup{Metadata: api.ObjectMeta{Name: "taken"}}, nil)
	taken := r.object(api.SecurityGroupKind, "taken")
	if err := r.apply(r.alice, "clash", api.StackSpec{Resources: []api.StackResource{
		res("SecurityGroup", "taken", `{"rules":[{"direction":"ingress","protocol":"tcp","portMin":22,"portMax":22,"cidr":"0.0.0.0/0"}]}`),
	}}); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLimit, "stack clash Failed", func() (bool, string) {
		s := r.stack("clash")
		return s.Status.Phase == api.StackFailed && strings.Contains(s.Status.Message, "SecurityGroup taken exists and is not owned by stack clash"), s.Status.Message
	})
	if o := r.object(api.SecurityGroupKind, "taken"); o.Meta().ResourceVersion != taken.Meta().ResourceVersion {
		t.Error("the security group the stack does not own was written")
	}

	// A stack whose author cannot create what it names fails, saying why.
	viewer := r.a.Client(t, r.a.Token(t, "carol", "default", api.RoleViewer))
	for name, author := range map[string]string{"byviewer": "carol", "byghost": "ghost"} {
		r.a.Create(t, &api.Stack{Metadata: api.ObjectMeta{Name: name, Project: "default", Finalizers: []string{api.FinalizerStack}},
			Spec: api.StackSpec{AppliedBy: author, Resources: []api.StackResource{res("Network", name, `{"cidr":"10.40.0.0/24"}`)}}})
	}
	wait.ForDetail(t, waitLimit, "stacks of authors without rights Failed", func() (bool, string) {
		v, g := r.stack("byviewer"), r.stack("byghost")
		return v.Status.Phase == api.StackFailed && strings.Contains(v.Status.Message, "user carol (role in project default: viewer), may not create networks") &&
				g.Status.Phase == api.StackFailed && strings.Contains(g.Status.Message, "no longer exists"),
			v.Status.Message + " | " + g.Status.Message
	})
	if r.object(api.NetworkKind, "byviewer") != nil || r.object(api.NetworkKind, "byghost") != nil {
		t.Error("a stack created what its author could not")
	}

	// A viewer cannot apply; a member of another project cannot apply
	// into this one (nor learn that it exists).
	spec := api.StackSpec{Resources: []api.StackResource{res("Network", "n", `{"cidr":"10.50.0.0/24"}`)}}
	if err := r.apply(viewer, "v", spec); !isCode(err, api.CodeForbidden) {
		t.Errorf("viewer's apply: %v, want forbidden", err)
	}
	r.a.Project(t, "other")
	outsider := r.a.Client(t, r.a.Token(t, "dave", "other", api.RoleMember))
	if err := r.apply(outsider, "o", spec); !isCode(err, api.CodeNotFound) {
		t.Errorf("outsider's apply: %v, want not found", err)
	}

	// The author is the caller, whatever the body says; the status is the
	// controller's.
	spec.AppliedBy = "admin"
	if err := r.apply(r.alice, "mine", spec); err != nil {
		t.Fatal(err)
	}
	s := r.applied("mine")
	if s.Spec.AppliedBy != "alice" {
		t.Errorf("appliedBy %q, want alice", s.Spec.AppliedBy)
	}
	// The author losing the role: what the stack must make again fails.
	r.a.Update(t, api.UserKind, "", "alice", func(o api.Object) { o.(*api.User).Spec.Roles = nil })
	r.a.Remove(t, api.NetworkKind, "default", "n")
	wait.ForDetail(t, waitLimit, "stack mine Failed", func() (bool, string) {
		s := r.stack("mine")
		return s.Status.Phase == api.StackFailed && strings.Contains(s.Status.Message, "user alice (role in project default: none), may not create networks"), s.Status.Message
	})
	if r.object(api.NetworkKind, "n") != nil {
		t.Error("the stack re-created a network its author may no longer create")
	}
	r.a.Update(t, api.UserKind, "", "alice", func(o api.Object) { o.(*api.User).Spec.Roles = map[string]api.Role{"default": api.RoleMember} })

	s.Status.Phase = api.StackFailed
	if _, err := r.alice.Do(ctx(t), "PUT", "/v1/projects/default/stacks/mine/status", nil, s, nil); !isCode(err, api.CodeForbidden) {
		t.Errorf("status write by a user: %v, want forbidden", err)
	}

	// A bad spec is refused whole.
	bad := api.StackSpec{Resources: []api.StackResource{res("Network", "n", `{"cidr":"10.0.0.0/33"}`), res("Nope", "x", `{}`)}}
	if err := r.apply(r.alice, "bad", bad); !isCode(err, api.CodeInvalid) {
		t.Errorf("bad spec: %v, want invalid", err)
	}
	if r.stack("bad") != nil {
		t.Error("a bad stack was stored")
	}
}

// isCode reports whether err is an API error with code.
func isCode(err error, code string) bool {
	var ae *api.Error
	return err != nil && asAPIError(err, &ae) && ae.Code == code
}
