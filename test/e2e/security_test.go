package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

func clientCreateKey(k string) client.CreateOptions { return client.CreateOptions{IdempotencyKey: k} }

func TestProjectMemberCannotSeeOtherProjects(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro("instance", "create", "secret", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	c.ouro("project", "create", "blue")
	var tok api.Token
	if err := json.Unmarshal([]byte(c.ouro("token", "create", "--project", "blue", "--role", "member", "-o", "json")), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.Status.Secret == "" {
		t.Fatal("token create printed no secret")
	}
	member := c.clientAs(tok.Status.Secret)
	ctx := context.Background()

	var in api.Instance
	if err := member.Get(ctx, api.InstanceKind, "default", "secret", &in); !api.IsNotFound(err) {
		t.Errorf("member of blue reading default/secret: %v, want NotFound", err)
	}
	if _, _, err := client.List[api.Instance](ctx, member, api.InstanceKind, "default", client.ListOptions{}); err == nil {
		t.Errorf("member of blue listed default's instances")
	}
	// A list over all projects shows the member only what it may see.
	all, _, err := client.List[api.Instance](ctx, member, api.InstanceKind, "", client.ListOptions{})
	if err != nil {
		t.Fatalf("member listing all projects: %v", err)
	}
	for _, in := range all {
		if in.Metadata.Project != "blue" {
			t.Errorf("member of blue sees %s/%s", in.Metadata.Project, in.Metadata.Name)
		}
	}
	if err := member.Delete(ctx, api.InstanceKind, "default", "secret"); !api.IsNotFound(err) {
		t.Errorf("member of blue deleting default/secret: %v, want NotFound", err)
	}
	// Through the CLI with OURO_TOKEN, as a user would.
	_, errOut, err := c.run([]string{"OURO_TOKEN=" + tok.Status.Secret}, "instance", "get", "secret", "--project", "default")
	if err == nil || !strings.Contains(strings.ToLower(errOut), "not found") {
		t.Errorf("CLI as member: err %v, stderr %q", err, errOut)
	}
	// In its own project the member works normally (busybox is public).
	c.run([]string{"OURO_TOKEN=" + tok.Status.Secret}, "instance", "create", "mine", "--project", "blue", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "60")
	if err := member.Get(ctx, api.InstanceKind, "blue", "mine", &in); err != nil {
		t.Errorf("member reading its own instance: %v", err)
	}
	if _, err := c.instance("default", "secret"); err != nil {
		t.Errorf("default/secret damaged: %v", err)
	}
}

func TestHostileInputIsRefusedAndChangesNothing(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro("instance", "create", "existing", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	good := `{"metadata":{"name":"ok"},"spec":{"image":"busybox","flavor":"tiny"}}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		mention                         string
	}{
		{"bad name", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"Bad_Name!"},"spec":{"image":"busybox","flavor":"tiny"}}`, 400, "metadata.name"},
		{"name too long", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"` + strings.Repeat("a", 64) + `"},"spec":{"image":"busybox","flavor":"tiny"}}`, 400, "metadata.name"},
		{"unknown field", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x1"},"spec":{"image":"busybox","flavor":"tiny","bogus":1}}`, 400, "bogus"},
		{"wrong type", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x2"},"spec":{"image":5,"flavor":"tiny"}}`, 400, "spec.image"},
		{"unknown flavor", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x3"},"spec":{"image":"busybox","flavor":"huge"}}`, 400, "spec.flavor"},
		{"unknown image", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x4"},"spec":{"image":"nope","flavor":"tiny"}}`, 400, "spec.image"},
		{"malformed json", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":`, 400, ""},
		{"trailing garbage", "POST", "/v1/projects/default/instances", "application/json", good + `{}`, 400, ""},
		{"huge body", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x5"},"spec":{"image":"busybox","flavor":"tiny","command":["` + strings.Repeat("A", 2<<20) + `"]}}`, 413, ""},
		{"wrong content type", "POST", "/v1/projects/default/instances", "text/plain", good, 415, ""},
		{"bad label", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x6","labels":{"a b":"c"}},"spec":{"image":"busybox","flavor":"tiny"}}`, 400, "labels"},
		{"bad power state", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x7"},"spec":{"image":"busybox","flavor":"tiny","powerState":"Exploded"}}`, 400, "spec.powerState"},
		{"bad env", "POST", "/v1/projects/default/instances", "application/json", `{"metadata":{"name":"x8"},"spec":{"image":"busybox","flavor":"tiny","env":["no-equals"]}}`, 400, "spec.env"},
		{"traversal in path", "GET", "/v1/projects/default/instances/..%2F..%2Fetc", "", "", 400, ""},
		{"bad selector", "GET", "/v1/projects/default/instances?labelSelector=%3D%3D%3D", "", "", 400, "labelSelector"},
		{"negative vcpus", "POST", "/v1/flavors", "application/json", `{"metadata":{"name":"neg"},"spec":{"vcpus":-1,"memoryMiB":128,"diskGiB":1}}`, 400, "spec.vcpus"},
		{"stale resourceVersion", "PUT", "/v1/projects/default/instances/existing", "application/json", `{"metadata":{"name":"existing","resourceVersion":"1"},"spec":{"image":"default/busybox","flavor":"tiny","powerState":"Stopped"}}`, 409, ""},
	}
	before := c.listInstances("default")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = bytes.NewBufferString(tc.body)
			}
			req, _ := http.NewRequest(tc.method, c.url+tc.path, body)
			req.Header.Set("Authorization", "Bearer "+c.admin)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("not an error body: %s", raw)
			}
			if tc.mention != "" && !strings.Contains(eb.Error.Field+" "+eb.Error.Message, tc.mention) {
				t.Errorf("error does not name %q: %+v", tc.mention, eb.Error)
			}
		})
	}
	after := c.listInstances("default")
	if len(after) != len(before) {
		t.Errorf("hostile requests changed the instances: %d before, %d after", len(before), len(after))
	}
	var unauth *http.Response
	req, _ := http.NewRequest("GET", c.url+"/v1/projects/default/instances", nil)
	req.Header.Set("Authorization", "Bearer ouro_aaaaaaaaaaaa_bogus")
	unauth, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	unauth.Body.Close()
	if unauth.StatusCode != 401 {
		t.Errorf("a bogus token got %d, want 401", unauth.StatusCode)
	}
}
