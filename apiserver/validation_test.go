package apiserver

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

func TestBootstrap(t *testing.T) {
	e := newEnv(t)
	if _, _, err := auth.Parse(e.admin); err != nil {
		t.Fatalf("admin token %q: %v", e.admin, err)
	}
	var who api.Whoami
	e.must(http.StatusOK, "GET", "/v1/whoami", e.admin, nil).decode(t, &who)
	if who.User != "admin" || !who.ClusterAdmin {
		t.Errorf("whoami = %+v", who)
	}
	st, err := os.Stat(filepath.Join(e.srv.cfg.DataDir, AdminTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("admin.token: %v, mode %v", err, st.Mode())
	}
	var flavors api.List[api.Flavor]
	e.must(http.StatusOK, "GET", "/v1/flavors", e.admin, nil).decode(t, &flavors)
	if len(flavors.Items) != 4 || flavors.Kind != "FlavorList" || flavors.Items[0].Kind != "Flavor" {
		t.Errorf("flavors = %+v", flavors)
	}
	before := e.fake.revision()
	again, err := e.srv.Bootstrap(context.Background())
	if err != nil || again != e.admin {
		t.Errorf("second Bootstrap = %q, %v; want the first token", again, err)
	}
	if e.fake.revision() != before {
		t.Error("second Bootstrap wrote to the store")
	}
}

func TestBootstrapFinishesInterruptedRun(t *testing.T) {
	e := newEnv(t)
	dir := e.srv.cfg.DataDir
	// Pretend the first start died after writing admin.token.new.
	final := filepath.Join(dir, AdminTokenFile)
	if err := os.Rename(final, final+".new"); err != nil {
		t.Fatal(err)
	}
	got, err := e.srv.Bootstrap(context.Background())
	if err != nil || got != e.admin {
		t.Fatalf("Bootstrap after crash = %q, %v; want %q", got, err, e.admin)
	}
	if _, err := os.Stat(final); err != nil {
		t.Error(err)
	}
	// Another server with an empty data directory makes no second admin token.
	srv2, err := New(Config{Store: e.store, DataDir: t.TempDir(), Logger: e.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := srv2.Bootstrap(context.Background()); err != nil || tok != "" {
		t.Errorf("second server Bootstrap = %q, %v", tok, err)
	}
	var toks api.List[api.Token]
	e.must(http.StatusOK, "GET", "/v1/tokens", e.admin, nil).decode(t, &toks)
	if len(toks.Items) != 1 {
		t.Errorf("%d tokens, want 1", len(toks.Items))
	}
}

func TestValidationLeavesStoreUnchanged(t *testing.T) {
	e := newEnv(t)
	e.image("default", "busybox", false)
	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string
		wantStatus  int
		wantField   string
		wantMsg     string
	}{
		{"bad name", "POST", "/v1/projects", `{"metadata":{"name":"Bad_Name"}}`, "", 400, "metadata.name", "not valid"},
		{"missing name", "POST", "/v1/flavors", `{"spec":{"vcpus":1,"memoryMiB":64}}`, "", 400, "metadata.name", "required"},
		{"bad path project", "POST", "/v1/projects/Nope!/instances", `{}`, "", 400, "project", ""},
		{"bad path name", "GET", "/v1/flavors/UPPER", ``, "", 400, "name", ""},
		{"huge body", "POST", "/v1/projects", `{"metadata":{"name":"x"},"spec":{"description":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`, "", 413, "", "larger"},
		{"unknown field", "POST", "/v1/projects", `{"metadata":{"name":"x"},"bogus":1}`, "", 400, "bogus", "unknown field"},
		{"wrong type", "POST", "/v1/flavors", `{"metadata":{"name":"x"},"spec":{"vcpus":"two"}}`, "", 400, "spec.vcpus", "expected number"},
		{"wrong type nested", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"command":"ls"}}`, "", 400, "spec.command", "expected array"},
		{"malformed", "POST", "/v1/projects", `{"metadata":`, "", 400, "", "ends too early"},
		{"syntax", "POST", "/v1/projects", `{"metadata":}`, "", 400, "", "malformed"},
		{"trailing data", "POST", "/v1/projects", `{"metadata":{"name":"x"}} {}`, "", 400, "", "after the JSON"},
		{"empty body", "POST", "/v1/projects", ``, "application/json", 400, "", "empty"},
		{"bad label key", "POST", "/v1/projects", `{"metadata":{"name":"x","labels":{"-no":"v"}}}`, "", 400, "metadata.labels.-no", "label key"},
		{"bad label value", "POST", "/v1/projects", `{"metadata":{"name":"x","labels":{"k":"a b"}}}`, "", 400, "metadata.labels.k", "label value"},
		{"bad annotation key", "POST", "/v1/projects", `{"metadata":{"name":"x","annotations":{"a\u0007b":"v"}}}`, "", 400, "metadata.annotations.a\ab", "annotation key"},
		{"bad annotation value", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x","annotations":{"k":"` + strings.Repeat("v", 5000) + `"}},"spec":{"image":"busybox","flavor":"tiny"}}`, "", 400, "metadata.annotations.k", "annotation value"},
		{"wrong content type", "POST", "/v1/projects", `{"metadata":{"name":"x"}}`, "text/plain", 415, "", "not supported"},
		{"no content type", "POST", "/v1/projects", `{"metadata":{"name":"x"}}`, "none", 415, "", "not supported"},
		{"project mismatch", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x","project":"other"},"spec":{"image":"busybox","flavor":"tiny"}}`, "", 400, "metadata.project", "does not match"},
		{"flavor range", "POST", "/v1/flavors", `{"metadata":{"name":"x"},"spec":{"vcpus":0,"memoryMiB":64}}`, "", 400, "spec.vcpus", "out of range"},
		{"flavor memory", "POST", "/v1/flavors", `{"metadata":{"name":"x"},"spec":{"vcpus":1,"memoryMiB":8}}`, "", 400, "spec.memoryMiB", "out of range"},
		{"user role", "POST", "/v1/users", `{"metadata":{"name":"bob"},"spec":{"roles":{"default":"owner"}}}`, "", 400, "spec.roles.default", "not valid"},
		{"unknown flavor", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"huge"}}`, "", 400, "spec.flavor", "does not exist"},
		{"unknown image", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"nope","flavor":"tiny"}}`, "", 400, "spec.image", "not found"},
		{"power state", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","powerState":"Paused"}}`, "", 400, "spec.powerState", "not valid"},
		{"env", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","env":["1X=2"]}}`, "", 400, "spec.env[0]", "KEY=VALUE"},
		{"long arg", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","command":["` + strings.Repeat("a", 4097) + `"]}}`, "", 400, "spec.command[0]", "bytes"},
		{"restart policy", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","restartPolicy":"Sometimes"}}`, "", 400, "spec.restartPolicy", "not valid"},
		{"host selector", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","placement":{"hostSelector":"zone=a,,b"}}}`, "", 400, "spec.placement.hostSelector", "empty term"},
		{"anti-affinity mode", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","placement":{"antiAffinityKey":"web","antiAffinity":"strict"}}}`, "", 400, "spec.placement.antiAffinity", "not valid"},
		{"anti-affinity without key", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","placement":{"antiAffinity":"hard"}}}`, "", 400, "spec.placement.antiAffinityKey", "needs a key"},
		{"anti-affinity key", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","placement":{"antiAffinityKey":"a b"}}}`, "", 400, "spec.placement.antiAffinityKey", "not valid"},
		{"health kind", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","healthCheck":{"kind":"grpc","port":80}}}`, "", 400, "spec.healthCheck.kind", "not valid"},
		{"health port", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","healthCheck":{"kind":"tcp"}}}`, "", 400, "spec.healthCheck.port", "out of range"},
		{"health path", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","healthCheck":{"kind":"http","port":80,"path":"healthz"}}}`, "", 400, "spec.healthCheck.path", "not valid"},
		{"health interval", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","healthCheck":{"kind":"http","port":80,"intervalSeconds":-1}}}`, "", 400, "spec.healthCheck.intervalSeconds", "out of range"},
		{"network", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","networks":[{"network":"lan"}]}}`, "", 400, "spec.networks[0].network", "does not exist"},
		{"no project", "POST", "/v1/projects/ghost/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny"}}`, "", 404, "", "ghost"},
		{"image format", "POST", "/v1/projects/default/images", `{"metadata":{"name":"x"},"spec":{"format":"vhd"}}`, "", 400, "spec.format", "not supported"},
		{"image no disk", "POST", "/v1/projects/default/images", `{"metadata":{"name":"x"},"spec":{"format":"qcow2"}}`, "", 400, "spec.disk", "needs a disk"},
		{"image no layers", "POST", "/v1/projects/default/images", `{"metadata":{"name":"x"},"spec":{"format":"oci"}}`, "", 400, "spec.layers", "0 layers"},
		{"image digest", "POST", "/v1/projects/default/images", `{"metadata":{"name":"x"},"spec":{"format":"oci","layers":[{"digest":"md5:1","size":1,"mediaType":"` + api.MediaTypeLayerTar + `"}]}}`, "", 400, "spec.layers[0].digest", "not valid"},
		{"image blob missing", "POST", "/v1/projects/default/images", `{"metadata":{"name":"x"},"spec":{"format":"oci","layers":[{"digest":"sha256:` + strings.Repeat("0", 64) + `","size":1,"mediaType":"` + api.MediaTypeLayerTar + `"}]}}`, "", 400, "spec.layers[0].digest", "not uploaded"},
		{"image media type", "POST", "/v1/projects/default/images", `{"metadata":{"name":"x"},"spec":{"format":"oci","layers":[{"digest":"sha256:` + strings.Repeat("0", 64) + `","size":1,"mediaType":"text/plain"}]}}`, "", 400, "spec.layers[0].mediaType", "not supported"},
		{"event type", "POST", "/v1/projects/default/events", `{"object":{"kind":"Instance","name":"x"},"type":"Bad","reason":"R"}`, "", 400, "type", "not valid"},
		{"event message", "POST", "/v1/projects/default/events", `{"object":{"kind":"Instance","name":"x"},"type":"Normal","reason":"R","message":"` + strings.Repeat("m", 1025) + `"}`, "", 400, "message", "bytes"},
		{"update without version", "PUT", "/v1/projects/default", `{"metadata":{"name":"default"}}`, "", 400, "metadata.resourceVersion", "required"},
		{"update name mismatch", "PUT", "/v1/projects/default", `{"metadata":{"name":"other","resourceVersion":"1"}}`, "", 400, "metadata.name", "does not match"},
		{"bad selector", "GET", "/v1/flavors?labelSelector=a%20b=c", ``, "", 400, "labelSelector", ""},
		{"bad limit", "GET", "/v1/flavors?limit=-1", ``, "", 400, "limit", ""},
		{"host filter on flavors", "GET", "/v1/flavors?host=h1", ``, "", 400, "host", ""},
		{"bad idempotency key", "POST", "/v1/projects", `{"metadata":{"name":"x"}}`, "idem", 400, "Idempotency-Key", ""},
		{"unknown route", "GET", "/v1/nothing", ``, "", 404, "", "no route"},
		{"duplicate flavor", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","flavor":"large"}}`, "", 400, "spec.flavor", "more than once"},
		{"duplicate name", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x","name":"y"},"spec":{"image":"busybox","flavor":"tiny"}}`, "", 400, "metadata.name", "more than once"},
		{"duplicate by case", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","Flavor":"large","flavor":"tiny"}}`, "", 400, "spec.flavor", "more than once"},
		{"duplicate top level", "POST", "/v1/projects", `{"metadata":{"name":"x"},"metadata":{"name":"y"}}`, "", 400, "metadata", "more than once"},
		{"duplicate in list", "POST", "/v1/projects/default/instances", `{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","networks":[{"network":"default","network":"lan"}]}}`, "", 400, "spec.networks[0].network", "more than once"},
		{"duplicate label", "POST", "/v1/projects", `{"metadata":{"name":"x","labels":{"a":"1","a":"2"}}}`, "", 400, "metadata.labels.a", "more than once"},
		{"duplicate on update", "PUT", "/v1/projects/default", `{"metadata":{"name":"default","resourceVersion":"1","resourceVersion":"2"}}`, "", 400, "metadata.resourceVersion", "more than once"},
		{"duplicate token role", "POST", "/v1/tokens", `{"user":"bob","project":"default","role":"viewer","role":"admin"}`, "", 400, "role", "more than once"},
		{"exec stdin not base64", "POST", "/v1/projects/default/instances/x/exec", `{"command":["cat"],"stdin":"not base64!"}`, "", 400, "stdin", "base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.fake.revision()
			var headers []string
			switch tt.contentType {
			case "":
			case "none":
				headers = []string{"Content-Type", ""}
			case "idem":
				headers = []string{"Idempotency-Key", "has space"}
			default:
				headers = []string{"Content-Type", tt.contentType}
			}
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := e.do(tt.method, tt.path, e.admin, body, headers...)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			ae := r.apiError()
			if ae.Code == "" || ae.Message == "" {
				t.Errorf("no api.Error body: %s", r.body)
			}
			if tt.wantField != "" && !strings.HasPrefix(ae.Field, tt.wantField) {
				t.Errorf("field %q, want %q (%s)", ae.Field, tt.wantField, r.body)
			}
			if !strings.Contains(ae.Message, tt.wantMsg) {
				t.Errorf("message %q does not say %q", ae.Message, tt.wantMsg)
			}
			if after := e.fake.revision(); after != before {
				t.Errorf("store changed: revision %d → %d", before, after)
			}
		})
	}
}
