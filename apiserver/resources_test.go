package apiserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

func TestInstanceLifecycle(t *testing.T) {
	e := newEnv(t)
	e.image("default", "busybox", false)
	in := e.instance(e.admin, "default", "web", "busybox")
	if in.Kind != "Instance" || in.Spec.Image != "default/busybox" || in.Spec.Resources.MemoryMiB != 128 ||
		in.Status.Phase != api.PhasePending || in.Status.Driver != "container" || in.Spec.PowerState != api.PowerOn ||
		in.Metadata.UID == "" || in.Metadata.Generation != 1 {
		t.Fatalf("created instance %+v", in)
	}
	path := "/v1/projects/default/instances/web"

	// Status in a create or update body is ignored.
	changed := in
	changed.Spec.Image = "default/other"
	r := e.must(http.StatusBadRequest, "PUT", path, e.admin, changed)
	if ae := r.apiError(); ae.Field != "spec.image" || !strings.Contains(ae.Message, "immutable") {
		t.Errorf("immutable image: %+v", ae)
	}
	changed = in
	changed.Spec.Resources.VCPUs = 8
	if ae := e.must(http.StatusBadRequest, "PUT", path, e.admin, changed).apiError(); ae.Field != "spec.resources" {
		t.Errorf("immutable resources: %+v", ae)
	}
	changed = in
	changed.Metadata.Labels = map[string]string{"tier": "web"}
	changed.Status.Phase = api.PhaseRunning
	var updated api.Instance
	e.must(http.StatusOK, "PUT", path, e.admin, changed).decode(t, &updated)
	if updated.Status.Phase != api.PhasePending || updated.Metadata.Labels["tier"] != "web" || updated.Metadata.Generation != 1 {
		t.Errorf("label update: %+v", updated)
	}
	// A stale resourceVersion conflicts.
	if ae := e.must(http.StatusConflict, "PUT", path, e.admin, changed).apiError(); ae.Code != api.CodeConflict {
		t.Errorf("stale update: %+v", ae)
	}
	// A spec change bumps the generation.
	updated.Spec.PowerState = api.PowerOff
	var stopped api.Instance
	e.must(http.StatusOK, "PUT", path, e.admin, updated).decode(t, &stopped)
	if stopped.Metadata.Generation != 2 {
		t.Errorf("generation %d after a spec change, want 2", stopped.Metadata.Generation)
	}
	// Status writes need the version too, and keep the spec.
	st := stopped
	st.Spec.PowerState = api.PowerOn
	st.Status.Phase = api.PhaseStopped
	var afterStatus api.Instance
	e.must(http.StatusOK, "PUT", path+"/status", e.admin, st).decode(t, &afterStatus)
	if afterStatus.Status.Phase != api.PhaseStopped || afterStatus.Spec.PowerState != api.PowerOff {
		t.Errorf("status update: %+v", afterStatus)
	}
	e.must(http.StatusConflict, "PUT", path+"/status", e.admin, st)

	// Actions.
	var act api.Instance
	e.must(http.StatusOK, "POST", path+"/start", e.admin, nil).decode(t, &act)
	if act.Spec.PowerState != api.PowerOn || act.Spec.RebootRequests != 0 {
		t.Errorf("start: %+v", act.Spec)
	}
	// Start while wanted Running but Stopped: the agent is asked again.
	e.must(http.StatusOK, "POST", path+"/start", e.admin, nil).decode(t, &act)
	if act.Spec.RebootRequests != 1 {
		t.Errorf("start of a stopped instance: rebootRequests %d, want 1", act.Spec.RebootRequests)
	}
	e.must(http.StatusOK, "POST", path+"/reboot", e.admin, nil).decode(t, &act)
	if act.Spec.RebootRequests != 2 {
		t.Errorf("reboot: rebootRequests %d, want 2", act.Spec.RebootRequests)
	}
	e.must(http.StatusOK, "POST", path+"/stop", e.admin, nil).decode(t, &act)
	if act.Spec.PowerState != api.PowerOff {
		t.Errorf("stop: %+v", act.Spec)
	}
	e.must(http.StatusConflict, "POST", path+"/reboot", e.admin, nil)

	// In use: the image and the flavor cannot go.
	if ae := e.must(http.StatusConflict, "DELETE", "/v1/projects/default/images/busybox", e.admin, nil).apiError(); ae.Code != api.CodeInUse || !strings.Contains(ae.Message, "default/web") {
		t.Errorf("delete used image: %+v", ae)
	}
	e.must(http.StatusConflict, "DELETE", "/v1/flavors/tiny", e.admin, nil)
	e.must(http.StatusConflict, "DELETE", "/v1/projects/default", e.admin, nil)

	// Unplaced: deleted at once.
	e.must(http.StatusOK, "DELETE", path, e.admin, nil)
	e.must(http.StatusNotFound, "GET", path, e.admin, nil)

	// Placed: marked for the agent.
	e.instance(e.admin, "default", "db", "busybox")
	e.place("default", "db", "h1", api.PhaseRunning)
	var term api.Instance
	e.must(http.StatusAccepted, "DELETE", "/v1/projects/default/instances/db", e.admin, nil).decode(t, &term)
	if term.Status.Phase != api.PhaseTerminating || term.Metadata.DeletionTimestamp == nil {
		t.Errorf("delete of placed instance: %+v", term)
	}
	e.must(http.StatusAccepted, "DELETE", "/v1/projects/default/instances/db", e.admin, nil)
	e.must(http.StatusOK, "GET", "/v1/projects/default/instances/db", e.admin, nil)
}

func TestPublicImageResolution(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	e.project("b")
	e.project("c")
	e.image("a", "shared", true)
	e.image("a", "secret", false)
	member := e.userToken("mia", map[string]api.Role{"c": api.RoleMember})
	in := e.instance(member, "c", "x", "shared")
	if in.Spec.Image != "a/shared" {
		t.Errorf("public image resolved to %q", in.Spec.Image)
	}
	for _, img := range []string{"secret", "a/secret"} {
		r := e.do("POST", "/v1/projects/c/instances", member, api.Instance{Metadata: api.ObjectMeta{Name: "y"}, Spec: api.InstanceSpec{Image: img, Flavor: "tiny"}})
		if r.status != http.StatusBadRequest || r.apiError().Field != "spec.image" {
			t.Errorf("private image %s of another project: %d %s", img, r.status, r.body)
		}
	}
	// A second public image of the name is refused; one stored before
	// names were claimed makes the name ambiguous rather than picking one.
	second := e.image("b", "shared", false)
	second.Spec.Public = true
	r := e.do("PUT", "/v1/projects/b/images/shared", e.admin, second)
	if ae := r.apiError(); r.status != http.StatusConflict || ae.Field != "spec.public" || !strings.Contains(ae.Message, "a/shared") {
		t.Errorf("second public image of a name: %d %s", r.status, r.body)
	}
	second.Metadata = api.ObjectMeta{Name: "shared", Project: "d"}
	if _, err := e.store.Create(context.Background(), &second, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", "/v1/projects/c/instances", member, api.Instance{Metadata: api.ObjectMeta{Name: "z"}, Spec: api.InstanceSpec{Image: "shared", Flavor: "tiny"}})
	if r.status != http.StatusBadRequest || !strings.Contains(r.apiError().Message, "a/shared, d/shared") {
		t.Errorf("ambiguous public image: %d %s", r.status, r.body)
	}
	// Public images of other projects are readable, private ones hidden.
	e.must(http.StatusOK, "GET", "/v1/projects/a/images/shared", member, nil)
	e.must(http.StatusNotFound, "GET", "/v1/projects/a/images/secret", member, nil)
	var imgs api.List[api.Image]
	e.must(http.StatusOK, "GET", "/v1/images", member, nil).decode(t, &imgs)
	if len(imgs.Items) != 2 {
		t.Errorf("member sees %d images across projects, want the 2 public ones", len(imgs.Items))
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	e.project("b")
	e.image("a", "img", false)
	e.image("b", "img", false)
	e.instance(e.admin, "b", "secret", "img")
	e.instance(e.admin, "a", "mine", "img")
	e.instance(e.admin, "a", "other-host", "img")
	e.place("a", "mine", "h1", api.PhaseRunning)
	e.place("a", "other-host", "h2", api.PhaseRunning)
	member := e.userToken("mia", map[string]api.Role{"a": api.RoleMember})
	viewer := e.userToken("vic", map[string]api.Role{"a": api.RoleViewer})
	host := e.hostToken("h1")
	newInst := api.Instance{Metadata: api.ObjectMeta{Name: "n"}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny"}}

	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   any
		want   int
	}{
		{"no token", "", "GET", "/v1/flavors", nil, 401},
		{"bad token", "ouro_aaaaaaaaaaaa_bbbb", "GET", "/v1/flavors", nil, 401},
		{"member reads B's instance", member, "GET", "/v1/projects/b/instances/secret", nil, 404},
		{"member lists B's instances", member, "GET", "/v1/projects/b/instances", nil, 404},
		{"member deletes B's instance", member, "DELETE", "/v1/projects/b/instances/secret", nil, 404},
		{"member reads own", member, "GET", "/v1/projects/a/instances/mine", nil, 200},
		{"member reads B project", member, "GET", "/v1/projects/b", nil, 404},
		{"viewer cannot create", viewer, "POST", "/v1/projects/a/instances", newInst, 403},
		{"viewer cannot stop", viewer, "POST", "/v1/projects/a/instances/mine/stop", nil, 403},
		{"viewer reads", viewer, "GET", "/v1/projects/a/instances", nil, 200},
		{"member cannot write status", member, "PUT", "/v1/projects/a/instances/mine/status", api.Instance{Metadata: api.ObjectMeta{ResourceVersion: "1"}}, 403},
		{"member cannot make flavors", member, "POST", "/v1/flavors", api.Flavor{Metadata: api.ObjectMeta{Name: "f"}, Spec: api.Resources{VCPUs: 1, MemoryMiB: 64}}, 403},
		{"member cannot list users", member, "GET", "/v1/users", nil, 403},
		{"member cannot make join tokens", member, "POST", "/v1/jointokens", api.JoinTokenRequest{}, 403},
		{"member cannot grant", member, "POST", "/v1/tokens", api.TokenRequest{User: "x", Project: "a", Role: api.RoleViewer}, 403},
		{"host lists own", host, "GET", "/v1/instances?host=h1", nil, 200},
		{"host lists all", host, "GET", "/v1/instances", nil, 403},
		{"host lists other host", host, "GET", "/v1/instances?host=h2", nil, 403},
		{"host gets own", host, "GET", "/v1/projects/a/instances/mine", nil, 200},
		{"host gets other", host, "GET", "/v1/projects/a/instances/other-host", nil, 404},
		{"host gets image", host, "GET", "/v1/projects/b/images/img", nil, 200},
		{"host creates instance", host, "POST", "/v1/projects/a/instances", newInst, 404},
		{"host reads users", host, "GET", "/v1/users/admin", nil, 403},
		{"host heartbeats another", host, "POST", "/v1/hosts/h2/heartbeat", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.fake.revision()
			r := e.do(tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if r.status >= 400 && r.apiError().Code == "" {
				t.Errorf("no api.Error body: %s", r.body)
			}
			if r.status >= 400 && e.fake.revision() != before {
				t.Error("a refused request changed the store")
			}
		})
	}

	var list api.List[api.Instance]
	e.must(http.StatusOK, "GET", "/v1/instances?host=h1", host, nil).decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].Metadata.Name != "mine" {
		t.Errorf("host sees %+v", list.Items)
	}
	e.must(http.StatusOK, "GET", "/v1/instances", member, nil).decode(t, &list)
	for _, in := range list.Items {
		if in.Metadata.Project != "a" {
			t.Errorf("member sees instance %s/%s", in.Metadata.Project, in.Metadata.Name)
		}
	}
	var projects api.List[api.Project]
	e.must(http.StatusOK, "GET", "/v1/projects", viewer, nil).decode(t, &projects)
	if len(projects.Items) != 1 || projects.Items[0].Metadata.Name != "a" {
		t.Errorf("viewer sees projects %+v", projects.Items)
	}
	// A host writes the status of its own instances but cannot move them.
	var mine api.Instance
	e.must(http.StatusOK, "GET", "/v1/projects/a/instances/mine", host, nil).decode(t, &mine)
	mine.Status.Phase = api.PhaseStopped
	e.must(http.StatusOK, "PUT", "/v1/projects/a/instances/mine/status", host, mine).decode(t, &mine)
	mine.Status.Host = "h2"
	e.must(http.StatusBadRequest, "PUT", "/v1/projects/a/instances/mine/status", host, mine)
}

func TestIdempotentCreate(t *testing.T) {
	e := newEnv(t)
	e.image("default", "img", false)
	body := api.Instance{Metadata: api.ObjectMeta{Name: "once"}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny"}}
	var first, second api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "k1").decode(t, &first)
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "k1").decode(t, &second)
	if first.Metadata.UID != second.Metadata.UID {
		t.Errorf("retry made another object: %s vs %s", first.Metadata.UID, second.Metadata.UID)
	}
	var list api.List[api.Instance]
	e.must(http.StatusOK, "GET", "/v1/projects/default/instances", e.admin, nil).decode(t, &list)
	if len(list.Items) != 1 {
		t.Errorf("%d instances, want 1", len(list.Items))
	}
	body.Spec.Flavor = "small"
	r := e.must(http.StatusConflict, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "k1")
	if r.apiError().Code != api.CodeIdempotencyMismatch {
		t.Errorf("reused key: %s", r.body)
	}
	// Without a key the same name is taken.
	body.Spec.Flavor = "tiny"
	if ae := e.must(http.StatusConflict, "POST", "/v1/projects/default/instances", e.admin, body).apiError(); ae.Code != api.CodeAlreadyExists {
		t.Errorf("duplicate name: %+v", ae)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	var names []string
	var cont string
	for range 10 {
		var page api.List[api.Flavor]
		e.must(http.StatusOK, "GET", "/v1/flavors?limit=3&continue="+cont, e.admin, nil).decode(t, &page)
		for _, f := range page.Items {
			names = append(names, f.Metadata.Name)
		}
		if cont = page.Metadata.Continue; cont == "" {
			break
		}
	}
	if strings.Join(names, ",") != "large,medium,small,tiny" {
		t.Errorf("pages gave %v", names)
	}
}
