package apiserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

const groupsPath = "/v1/projects/default/instancegroups"

func TestGroupValidation(t *testing.T) {
	e := newEnv(t)
	e.image("default", "busybox", false)
	tmpl := `"template":{"image":"busybox","flavor":"tiny"}`
	group := func(spec string) string { return `{"metadata":{"name":"web"},"spec":{` + spec + `}}` }
	tests := []struct {
		name, body, field, msg string
	}{
		{"negative count", group(tmpl + `,"count":-1`), "spec.count", "out of range"},
		{"count too large", group(tmpl + `,"count":1001`), "spec.count", "out of range"},
		{"min above max", group(tmpl + `,"count":1,"autoscaling":{"min":5,"max":3,"targetCPUPercent":50}`), "spec.autoscaling.min", "min 5 is above max 3"},
		{"max zero", group(tmpl + `,"autoscaling":{"min":0,"max":0,"targetCPUPercent":50}`), "spec.autoscaling.max", "out of range"},
		{"target zero", group(tmpl + `,"autoscaling":{"min":1,"max":3,"targetCPUPercent":0}`), "spec.autoscaling.targetCPUPercent", "out of range"},
		{"target above 100", group(tmpl + `,"autoscaling":{"min":1,"max":3,"targetCPUPercent":101}`), "spec.autoscaling.targetCPUPercent", "out of range"},
		{"negative stabilization", group(tmpl + `,"autoscaling":{"min":1,"max":3,"targetCPUPercent":50,"scaleInStabilizationSeconds":-1}`), "spec.autoscaling.scaleInStabilizationSeconds", "out of range"},
		{"unknown health kind", group(tmpl + `,"healthCheck":{"kind":"grpc","port":80}`), "spec.healthCheck.kind", `"grpc" is not valid`},
		{"health kind missing", group(tmpl + `,"healthCheck":{"port":80}`), "spec.healthCheck.kind", "required"},
		{"tcp without port", group(tmpl + `,"healthCheck":{"kind":"tcp"}`), "spec.healthCheck.port", "out of range"},
		{"http port too large", group(tmpl + `,"healthCheck":{"kind":"http","port":70000}`), "spec.healthCheck.port", "out of range"},
		{"http relative path", group(tmpl + `,"healthCheck":{"kind":"http","port":80,"path":"healthz"}`), "spec.healthCheck.path", "not valid"},
		{"tcp with a path", group(tmpl + `,"healthCheck":{"kind":"tcp","port":22,"path":"/"}`), "spec.healthCheck.path", "no path"},
		{"running with a port", group(tmpl + `,"healthCheck":{"kind":"running","port":22}`), "spec.healthCheck.kind", "takes no port"},
		{"negative interval", group(tmpl + `,"healthCheck":{"kind":"tcp","port":22,"intervalSeconds":-1}`), "spec.healthCheck.intervalSeconds", "out of range"},
		{"surge and unavailable 0", group(tmpl + `,"update":{"maxSurge":0}`), "spec.update.maxSurge", "both 0"},
		{"negative surge", group(tmpl + `,"update":{"maxSurge":-1}`), "spec.update.maxSurge", "out of range"},
		{"negative unavailable", group(tmpl + `,"update":{"maxUnavailable":-2}`), "spec.update.maxUnavailable", "out of range"},
		{"negative deadline", group(tmpl + `,"update":{"progressDeadlineSeconds":-5}`), "spec.update.progressDeadlineSeconds", "out of range"},
		{"anti-affinity", group(tmpl + `,"placement":{"antiAffinity":"always"}`), "spec.placement.antiAffinity", "not valid"},
		{"anti-affinity key", group(tmpl + `,"placement":{"antiAffinityKey":"x"}`), "spec.placement.antiAffinityKey", "itself"},
		{"host selector", group(tmpl + `,"placement":{"hostSelector":"a b=c"}`), "spec.placement.hostSelector", "not valid"},
		{"unknown image", group(`"template":{"image":"nope","flavor":"tiny"}`), "spec.template.image", "not found"},
		{"no image", group(`"template":{"flavor":"tiny"}`), "spec.template.image", "required"},
		{"unknown flavor", group(`"template":{"image":"busybox","flavor":"huge"}`), "spec.template.flavor", "does not exist"},
		{"bad env", group(`"template":{"image":"busybox","flavor":"tiny","env":["1X=2"]}`), "spec.template.env[0]", "KEY=VALUE"},
		{"missing network", group(`"template":{"image":"busybox","flavor":"tiny","networks":[{"network":"lan"}]}`), "spec.template.networks[0].network", "does not exist"},
		{"fixed address", group(`"template":{"image":"busybox","flavor":"tiny","networks":[{"network":"default","ip":"172.31.0.9"}]}`), "spec.template.networks[0].ip", "cannot ask"},
		{"reserved label", group(`"template":{"image":"busybox","flavor":"tiny","labels":{"ouro.dev/group":"x"}}`), "spec.template.labels.ouro.dev/group", "reserved"},
		{"bad label", group(`"template":{"image":"busybox","flavor":"tiny","labels":{"-x":"y"}}`), "spec.template.labels.-x", "not valid"},
		{"restart policy", group(`"template":{"image":"busybox","flavor":"tiny","restartPolicy":"Sometimes"}`), "spec.template.restartPolicy", "not valid"},
		{"unknown key pair", group(`"template":{"image":"busybox","flavor":"tiny","keyName":"mine"}`), "spec.template.keyName", "does not exist"},
		{"user-data too large", group(`"template":{"image":"busybox","flavor":"tiny","userData":"` + strings.Repeat("x", 16<<10+1) + `"}`), "spec.template.userData", "bytes"},
		{"name too long", `{"metadata":{"name":"` + strings.Repeat("a", 58) + `"},"spec":{` + tmpl + `}}`, "metadata.name", "58 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.fake.revision()
			r := e.do("POST", groupsPath, e.admin, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			ae := r.apiError()
			if ae.Field != tt.field || !strings.Contains(ae.Message, tt.msg) {
				t.Errorf("error %s: %s (hint %q); want field %s saying %q", ae.Field, ae.Message, ae.Hint, tt.field, tt.msg)
			}
			if ae.Hint == "" {
				t.Errorf("no hint: %s", r.body)
			}
			if after := e.fake.revision(); after != before {
				t.Errorf("store changed: revision %d → %d", before, after)
			}
		})
	}
	r := e.do("POST", groupsPath, e.admin, group(tmpl+`,"healthCheck":{"kind":"grpc"}`))
	if h := r.apiError().Hint; !strings.Contains(h, "running, tcp, http or loadBalancer") {
		t.Errorf("an unknown health kind's hint %q lists no valid kinds", h)
	}
}

func TestGroupCreateDefaultsAndUpdate(t *testing.T) {
	e := newEnv(t)
	e.image("default", "busybox", true)
	var g api.InstanceGroup
	e.must(http.StatusCreated, "POST", groupsPath, e.admin, `{"metadata":{"name":"web"},"spec":{"count":9,`+
		`"template":{"image":"busybox","flavor":"tiny","command":["sleep","60"]},`+
		`"healthCheck":{"kind":"http","port":8080},"autoscaling":{"min":1,"max":4,"targetCPUPercent":60}},`+
		`"status":{"desired":77,"rollout":"Complete"}}`).decode(t, &g)
	if g.Spec.Template.Image != "default/busybox" {
		t.Errorf("image %q, want it resolved to default/busybox", g.Spec.Template.Image)
	}
	if n := g.Spec.Template.Networks; len(n) != 1 || n[0].Network != "default" || len(n[0].SecurityGroups) != 1 {
		t.Errorf("networks %+v, want the default network with the default group", n)
	}
	if g.Spec.Count != 4 {
		t.Errorf("count %d, want 9 clamped to max 4", g.Spec.Count)
	}
	if g.Spec.HealthCheck.Path != "/" {
		t.Errorf("http check path %q, want /", g.Spec.HealthCheck.Path)
	}
	if g.Status.Desired != 0 || g.Status.Rollout != "" || g.Metadata.Generation != 1 {
		t.Errorf("the client wrote server-owned status or metadata: %+v, generation %d", g.Status, g.Metadata.Generation)
	}

	path := groupsPath + "/web"
	g.Spec.Count = 2
	e.must(http.StatusOK, "PUT", path, e.admin, g).decode(t, &g)
	if g.Metadata.Generation != 2 {
		t.Errorf("generation %d after a count change", g.Metadata.Generation)
	}
	g.Spec.Template.Env = []string{"V=2"}
	e.must(http.StatusOK, "PUT", path, e.admin, g).decode(t, &g)
	if g.Metadata.Generation != 3 || g.Spec.Template.Image != "default/busybox" {
		t.Errorf("after a template change: generation %d, image %q", g.Metadata.Generation, g.Spec.Template.Image)
	}
	e.must(http.StatusOK, "PUT", path, e.admin, g).decode(t, &g)
	if g.Metadata.Generation != 3 {
		t.Errorf("an update that changes nothing bumped the generation to %d", g.Metadata.Generation)
	}
	g.Spec.Stateful = true
	if r := e.do("PUT", path, e.admin, g); r.status != http.StatusBadRequest || r.apiError().Field != "spec.stateful" {
		t.Errorf("stateful change: %d %s", r.status, r.body)
	}

	// Members write no status; images and flavors a group uses stay.
	member := e.userToken("bob", map[string]api.Role{"default": api.RoleMember})
	g.Spec.Stateful = false
	if r := e.do("PUT", path+"/status", member, g); r.status != http.StatusForbidden {
		t.Errorf("status written by a project member: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/v1/projects/default/images/busybox", e.admin, nil); r.status != http.StatusConflict || !strings.Contains(string(r.body), "InstanceGroup default/web") {
		t.Errorf("delete of an image a group uses: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/v1/flavors/tiny", e.admin, nil); r.status != http.StatusConflict {
		t.Errorf("delete of a flavor a group uses: %d %s", r.status, r.body)
	}
	e.must(http.StatusOK, "DELETE", path, e.admin, nil)
}

// A group's template holds on to its network, security group and key pair
// as instances do: deleting them would leave a group that cannot make
// members.
func TestGroupTemplateHoldsWhatItNames(t *testing.T) {
	e := newEnv(t)
	e.image("default", "busybox", true)
	_, line := newKey(t, "ops@laptop")
	e.must(http.StatusCreated, "POST", "/v1/projects/default/keypairs", e.admin,
		api.KeyPair{Metadata: api.ObjectMeta{Name: "ops"}, Spec: api.KeyPairSpec{PublicKey: line}})
	e.must(http.StatusCreated, "POST", netsPath, e.admin, `{"metadata":{"name":"back"},"spec":{"cidr":"10.50.0.0/24"}}`)
	e.must(http.StatusCreated, "POST", "/v1/projects/default/securitygroups", e.admin, `{"metadata":{"name":"web"}}`)
	e.must(http.StatusCreated, "POST", groupsPath, e.admin, `{"metadata":{"name":"web"},"spec":{"count":0,`+
		`"template":{"image":"busybox","flavor":"tiny","keyName":"ops","networks":[{"network":"back","securityGroups":["web"]}]}}}`)

	held := []struct{ what, path string }{
		{"network", netsPath + "/back"},
		{"security group", "/v1/projects/default/securitygroups/web"},
		{"key pair", "/v1/projects/default/keypairs/ops"},
	}
	for _, h := range held {
		r := e.do("DELETE", h.path, e.admin, nil)
		if r.status != http.StatusConflict || r.apiError().Code != api.CodeInUse || !strings.Contains(r.apiError().Message, "InstanceGroup default/web") {
			t.Errorf("delete of the %s a group's template names: %d %s", h.what, r.status, r.body)
		}
	}
	e.must(http.StatusOK, "DELETE", groupsPath+"/web", e.admin, nil)
	for _, h := range held {
		e.must(http.StatusOK, "DELETE", h.path, e.admin, nil)
	}
}
