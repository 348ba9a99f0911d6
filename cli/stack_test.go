package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
)

// stacks serves /v1/projects/demo/stacks in front of the API server (the
// tests of the CLI need no stack controller): it stores stacks, counts
// writes and, with applied set, answers as a controller that applied
// each generation at once.
type stacks struct {
	mu      sync.Mutex
	objs    map[string]*api.Stack
	rv      int
	writes  []string
	applied func(s *api.Stack)
}

func (f *stacks) wrap(next http.Handler) http.Handler {
	const prefix = "/v1/projects/demo/stacks"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix) {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
		fail := func(e *api.Error) { writeJSON(w, e.Status, api.ErrorBody{Error: e}) }
		switch {
		case r.Method == http.MethodGet && name == "" && r.URL.Query().Get("watch") == "":
			l := api.List[api.Stack]{Items: []api.Stack{}}
			for _, s := range f.objs {
				l.Items = append(l.Items, *s)
			}
			writeJSON(w, http.StatusOK, l)
		case r.Method == http.MethodGet && name != "":
			s, ok := f.objs[name]
			if !ok {
				fail(api.NotFound("stack", name))
				return
			}
			writeJSON(w, http.StatusOK, s)
		case r.Method == http.MethodPost && name == "":
			var s api.Stack
			if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
				fail(api.Invalid("", "", "%v", err))
				return
			}
			s.Metadata.Project = "demo"
			s.Metadata.Generation = 1
			f.store(&s)
			f.writes = append(f.writes, "create "+s.Metadata.Name)
			writeJSON(w, http.StatusCreated, &s)
		case r.Method == http.MethodPut && name != "":
			var s api.Stack
			if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
				fail(api.Invalid("", "", "%v", err))
				return
			}
			old, ok := f.objs[name]
			if !ok {
				fail(api.NotFound("stack", name))
				return
			}
			if s.Metadata.ResourceVersion != old.Metadata.ResourceVersion {
				fail(api.Conflict("stack %s changed", name))
				return
			}
			s.Status = old.Status
			s.Metadata.Generation = old.Metadata.Generation + 1
			f.store(&s)
			f.writes = append(f.writes, "update "+name)
			writeJSON(w, http.StatusOK, &s)
		case r.Method == http.MethodDelete && name != "":
			if _, ok := f.objs[name]; !ok {
				fail(api.NotFound("stack", name))
				return
			}
			delete(f.objs, name)
			f.writes = append(f.writes, "delete "+name)
			writeJSON(w, http.StatusOK, struct{}{})
		default:
			fail(&api.Error{Status: http.StatusMethodNotAllowed, Code: api.CodeMethodNotAllowed, Message: r.Method + " " + r.URL.Path})
		}
	})
}

// store keeps s at a new resourceVersion, applied if the test says so.
func (f *stacks) store(s *api.Stack) {
	f.rv++
	s.Kind = "Stack"
	s.Metadata.ResourceVersion = fmt.Sprint(f.rv)
	s.Spec.AppliedBy = "admin"
	if f.applied != nil {
		f.applied(s)
	}
	f.objs[s.Metadata.Name] = s
}

// newStackCloud starts an API server with the fake stacks in front.
func newStackCloud(t *testing.T) (*cloud, *stacks) {
	t.Helper()
	f := &stacks{objs: map[string]*api.Stack{}}
	c := &cloud{tried: map[string]bool{}}
	c.Server = apitest.Start(t, apitest.Config{Wrap: f.wrap})
	c.Project(t, "demo")
	c.useConfig(t)
	return c, f
}

// writeStack writes a stack file and returns its path.
func writeStack(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const webStack = `kind: Stack
metadata:
  name: web
spec:
  parameters:
    port: {default: 80}
  outputs:
    net: ${Network/web.spec.cidr}
---
kind: Network
metadata:
  name: web
spec:
  cidr: 10.20.0.0/24
---
kind: SecurityGroup
metadata:
  name: web
spec:
  rules:
  - direction: ingress
    protocol: tcp
    portMin: ${param.port}
    cidr: 0.0.0.0/0
`

func TestStackPlanAndApply(t *testing.T) {
	c, f := newStackCloud(t)
	file := writeStack(t, webStack)

	r := runCLI(t, nil, "", "stack", "plan", "web", "-f", file)
	if r.code != 2 || !strings.Contains(r.stdout, "+ create Network/web\n+ create SecurityGroup/web\n2 to create") {
		t.Fatalf("plan of a new stack: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, nil, "", "apply", "-f", file)
	if r.code != 0 || r.stdout != "stack web created\n" {
		t.Fatalf("apply: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "stack", "apply", "web", "-f", file)
	if r.code != 0 || r.stdout != "stack web unchanged\n" {
		t.Fatalf("apply again: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "stack", "apply", "web", "-f", file, "--set", "port=8080")
	if r.code != 0 || r.stdout != "stack web updated\n" {
		t.Fatalf("apply with a new port: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := []string{"create web", "update web"}; !reflect.DeepEqual(f.writes, want) {
		t.Errorf("writes = %v, want %v", f.writes, want)
	}
	f.mu.Lock()
	s := f.objs["web"]
	f.mu.Unlock()
	if s.Spec.Parameters["port"] != "8080" || len(s.Spec.Resources) != 2 || !strings.Contains(string(s.Spec.Resources[1].Spec), `"portMin":8080`) {
		t.Errorf("stored spec = %+v", s.Spec)
	}

	// What the controller would have made: the network as the file says,
	// the group with the old port. Plan shows exactly that rule.
	owned := map[string]string{api.LabelStack: "web"}
	c.add(t, &api.Network{Metadata: api.ObjectMeta{Name: "web", Project: "demo", Labels: owned}, Spec: api.NetworkSpec{CIDR: "10.20.0.0/24"}})
	c.add(t, &api.SecurityGroup{Metadata: api.ObjectMeta{Name: "web", Project: "demo", Labels: owned}, Spec: api.SecurityGroupSpec{
		Rules: []api.SecurityGroupRule{{ID: "x", Direction: "ingress", Protocol: "tcp", PortMin: 80, PortMax: 80, CIDR: "0.0.0.0/0"}}}})
	f.mu.Lock()
	s.Status.Resources = []api.StackResourceStatus{{Kind: "Network", Name: "web", State: "Ready"}, {Kind: "SecurityGroup", Name: "web", State: "Ready"},
		{Kind: "Network", Name: "old", State: "Ready"}}
	f.mu.Unlock()
	r = runCLI(t, nil, "", "stack", "plan", "web", "-f", file, "--set", "port=8080")
	want := "~ update SecurityGroup/web\n    spec.rules[0].portMin: 80 -> 8080\n- delete Network/old\n0 to create, 1 to update, 1 to delete, 1 unchanged\n"
	if r.code != 2 || r.stdout != want {
		t.Fatalf("plan of a change: code %d\n%s%s\nwant\n%s", r.code, r.stdout, r.stderr, want)
	}
	f.mu.Lock()
	s.Status.Resources = s.Status.Resources[:2]
	f.mu.Unlock()
	r = runCLI(t, nil, "", "stack", "plan", "web", "-f", file)
	if r.code != 0 || r.stdout != "no changes (2 resources)\n" || r.stderr != "" {
		t.Fatalf("plan without changes: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.add(t, &api.Network{Metadata: api.ObjectMeta{Name: "other", Project: "demo"}, Spec: api.NetworkSpec{CIDR: "10.40.0.0/24"}})
	r = runCLI(t, nil, "", "stack", "plan", "web", "-f", writeStack(t, webStack+"---\nkind: Network\nmetadata: {name: other}\nspec: {cidr: 10.40.0.0/24}\n"))
	if r.code != 0 || !strings.Contains(r.stderr, "warning: Network other exists and is not owned by stack web") {
		t.Fatalf("plan of an object owned by no stack: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestStackBadFileRefusedBeforeAnyRequest(t *testing.T) {
	_, f := newStackCloud(t)
	file := writeStack(t, "kind: Network\nmetadata:\n  name: web\nspec:\n  cidr: 10.0.0.0/33\n---\nkind: Nope\nmetadata: {name: x}\n")
	r := runCLI(t, nil, "", "stack", "apply", "web", "-f", file)
	if r.code != 1 {
		t.Fatalf("code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{file + ":5: spec.cidr: ", file + ":7: kind: unknown kind \"Nope\""} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q lacks %q", r.stderr, want)
		}
	}
	if len(f.writes) != 0 {
		t.Errorf("writes = %v", f.writes)
	}
	r = runCLI(t, nil, "", "apply", "-f", writeStack(t, "kind: Network\nmetadata: {name: web}\nspec: {cidr: 10.0.0.0/24}\n"))
	if r.code != 1 || !strings.Contains(r.stderr, "no Stack header") {
		t.Errorf("apply without a header: code %d\n%s", r.code, r.stderr)
	}
}

func TestStackApplyWait(t *testing.T) {
	tests := []struct {
		name     string
		phase    string
		message  string
		wantCode int
		want     string
	}{
		{"applied", api.StackApplied, "", 0, "stack web created\nNetwork/web Ready\nSecurityGroup/web Ready\nstack web applied\n"},
		{"failed", api.StackFailed, "Network web exists and is not owned by stack web", 1, "stack web created\nNetwork/web Failed: not owned\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, f := newStackCloud(t)
			f.applied = func(s *api.Stack) {
				state, msg := api.ResourceReady, ""
				if tt.phase == api.StackFailed {
					state, msg = api.ResourceFailed, "not owned"
				}
				s.Status = api.StackStatus{Phase: tt.phase, ObservedGeneration: s.Metadata.Generation, Message: tt.message,
					Resources: []api.StackResourceStatus{{Kind: "Network", Name: "web", State: state, Message: msg}}}
				if tt.phase == api.StackApplied {
					s.Status.Resources = append(s.Status.Resources, api.StackResourceStatus{Kind: "SecurityGroup", Name: "web", State: state})
				}
			}
			r := runCLI(t, nil, "", "apply", "-f", writeStack(t, webStack), "--wait")
			if r.code != tt.wantCode || r.stdout != tt.want {
				t.Errorf("code %d\n%s%s\nwant code %d\n%s", r.code, r.stdout, r.stderr, tt.wantCode, tt.want)
			}
			if tt.message != "" && !strings.Contains(r.stderr, tt.message) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.message)
			}
		})
	}
}

func TestStackOutputsDriftListDelete(t *testing.T) {
	_, f := newStackCloud(t)
	f.objs["web"] = &api.Stack{Kind: "Stack", Metadata: api.ObjectMeta{Name: "web", Project: "demo", ResourceVersion: "1"},
		Spec: api.StackSpec{Resources: []api.StackResource{{Kind: "Network", Name: "web"}}},
		Status: api.StackStatus{Phase: api.StackApplied,
			Outputs: map[string]string{"vip": "10.20.0.5", "url": "http://10.99.0.201/"},
			Drift:   []api.StackDrift{{Kind: "InstanceGroup", Name: "web", Field: "spec.count", Want: "3", Got: "1", Corrected: true}}}}

	r := runCLI(t, nil, "", "stack", "outputs", "web", "-o", "json")
	var outs map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || outs["vip"] != "10.20.0.5" {
		t.Errorf("outputs -o json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "stack", "outputs", "web")
	if !regexpMatch(`(?m)^url +http://10.99.0.201/$`, r.stdout) {
		t.Errorf("outputs:\n%s%s", r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "stack", "drift", "web")
	if !regexpMatch(`(?m)^InstanceGroup/web +spec.count +3 +1 +yes$`, r.stdout) {
		t.Errorf("drift:\n%s%s", r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "stack", "list")
	if !regexpMatch(`(?m)^web +Applied +1 +1`, r.stdout) {
		t.Errorf("list:\n%s%s", r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "", "stack", "delete", "web", "--wait")
	if r.code != 0 || r.stdout != "stack/web deleting\nstack/web deleted\n" {
		t.Errorf("delete: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

func TestStackImageFromFile(t *testing.T) {
	c, f := newStackCloud(t)
	dir := t.TempDir()
	writeRootfs(t, filepath.Join(dir, "rootfs.tar.gz"))
	data, err := os.ReadFile(filepath.Join(dir, "rootfs.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	stackFile := func(sum string) string {
		path := filepath.Join(dir, "stack.yaml")
		body := "kind: Image\nmetadata: {name: box}\nspec:\n  description: a box\n  source: {file: rootfs.tar.gz, sha256: " + sum + "}\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	r := runCLI(t, nil, "", "stack", "apply", "img", "-f", stackFile(strings.Repeat("0", 64)))
	if r.code != 1 || !strings.Contains(r.stderr, "sha256") || len(f.writes) != 0 {
		t.Fatalf("a wrong sha256: code %d writes %v\n%s%s", r.code, f.writes, r.stdout, r.stderr)
	}

	r = runCLI(t, nil, "", "stack", "apply", "img", "-f", stackFile(hex.EncodeToString(sum[:])))
	if r.code != 0 {
		t.Fatalf("apply: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	f.mu.Lock()
	res := f.objs["img"].Spec.Resources[0]
	f.mu.Unlock()
	var spec api.ImageSpec
	if err := json.Unmarshal(res.Spec, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Format != api.FormatOCI || len(spec.Layers) != 1 || spec.Description != "a box" || strings.Contains(string(res.Spec), `"file"`) {
		t.Fatalf("image spec sent = %s", res.Spec)
	}
	has, err := c.Client(t, c.Admin).HasBlob(t.Context(), spec.Layers[0].Digest)
	if err != nil || !has {
		t.Errorf("layer %s uploaded: %v %v", spec.Layers[0].Digest, has, err)
	}
	r = runCLI(t, nil, "", "stack", "apply", "img", "-f", stackFile(hex.EncodeToString(sum[:])))
	if r.code != 0 || r.stdout != "stack img unchanged\n" {
		t.Errorf("apply again: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
