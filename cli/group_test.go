package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/clientconfig"
)

// groupAPI is a fake of the instance group routes and of instance lists.
type groupAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	rv        int
	requests  []request
	groups    map[string]*api.InstanceGroup
	instances []api.Instance
	// conflicts answers this many PUTs with 409 Conflict first.
	conflicts int
	// watch is sent, in order, on a group watch; then the stream stays
	// open.
	watch []api.WatchEvent[api.InstanceGroup]
}

func newGroupAPI(t *testing.T) *groupAPI {
	t.Helper()
	f := &groupAPI{t: t, rv: 10, groups: map[string]*api.InstanceGroup{}}
	mux := http.NewServeMux()
	base := "/v1/projects/{p}/instancegroups"
	mux.HandleFunc("GET "+base, f.list)
	mux.HandleFunc("POST "+base, func(w http.ResponseWriter, r *http.Request) {
		var g api.InstanceGroup
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil {
			writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "bad body: %v", err)})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.rv++
		g.Metadata.ResourceVersion, g.Metadata.Generation = strconv.Itoa(f.rv), 1
		f.groups[g.Metadata.Name] = &g
		writeJSON(w, 201, g)
	})
	mux.HandleFunc("GET "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		g := f.groups[r.PathValue("name")]
		if g == nil {
			writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("InstanceGroup", r.PathValue("name"))})
			return
		}
		writeJSON(w, 200, g)
	})
	mux.HandleFunc("PUT "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		var g api.InstanceGroup
		if err := json.NewDecoder(r.Body).Decode(&g); err != nil {
			writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "bad body: %v", err)})
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		cur := f.groups[r.PathValue("name")]
		if f.conflicts > 0 || cur == nil || cur.Metadata.ResourceVersion != g.Metadata.ResourceVersion {
			f.conflicts--
			f.rv++
			if cur != nil {
				cur.Metadata.ResourceVersion = strconv.Itoa(f.rv)
			}
			writeJSON(w, 409, api.ErrorBody{Error: api.Conflict("changed")})
			return
		}
		f.rv++
		g.Metadata.ResourceVersion, g.Metadata.Generation = strconv.Itoa(f.rv), cur.Metadata.Generation+1
		g.Status = cur.Status
		f.groups[g.Metadata.Name] = &g
		writeJSON(w, 200, g)
	})
	mux.HandleFunc("DELETE "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		g := f.groups[r.PathValue("name")]
		delete(f.groups, r.PathValue("name"))
		writeJSON(w, 200, g)
	})
	mux.HandleFunc("GET /v1/projects/{p}/instances", func(w http.ResponseWriter, r *http.Request) {
		sel, _ := api.ParseSelector(r.URL.Query().Get("labelSelector"))
		f.mu.Lock()
		defer f.mu.Unlock()
		items := []api.Instance{}
		for _, in := range f.instances {
			if sel.Matches(in.Metadata.Labels) {
				items = append(items, in)
			}
		}
		writeJSON(w, 200, api.List[api.Instance]{Kind: "InstanceList", Items: items})
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Key: r.Header.Get("Idempotency-Key"), Body: string(body)})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := &clientconfig.Config{}
	cfg.Upsert(clientconfig.Context{Name: "test", Server: f.srv.URL, Token: "tok", Project: "demo"}, true)
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	t.Setenv(clientconfig.EnvConfig, path)
	t.Setenv(command.EnvToken, "")
	t.Setenv(command.EnvServer, "")
	return f
}

func (f *groupAPI) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if r.URL.Query().Get("watch") == "true" {
		evs := f.watch
		f.mu.Unlock()
		w.WriteHeader(200)
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			w.Write(append(b, '\n'))
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	var names []string
	for n := range f.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	items := []api.InstanceGroup{}
	for _, n := range names {
		items = append(items, *f.groups[n])
	}
	f.mu.Unlock()
	writeJSON(w, 200, api.List[api.InstanceGroup]{Kind: "InstanceGroupList", Items: items})
}

func (f *groupAPI) add(g *api.InstanceGroup) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	g.Kind = "InstanceGroup"
	g.Metadata.Project = "demo"
	g.Metadata.ResourceVersion = strconv.Itoa(f.rv)
	f.groups[g.Metadata.Name] = g
}

// writes returns the non-GET requests seen.
func (f *groupAPI) writes() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.requests {
		if r.Method != "GET" {
			out = append(out, r)
		}
	}
	return out
}

func (f *groupAPI) group(name string) *api.InstanceGroup {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups[name]
}

func TestGroupCreateSendsTheSpec(t *testing.T) {
	f := newGroupAPI(t)
	ud := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(ud, []byte("#cloud-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "", "group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "3",
		"--health", "http:8080/healthz", "--network", "default", "--security-group", "web", "--key", "mine",
		"--user-data", ud, "--stateful", "--anti-affinity", "hard", "--host-selector", "zone=a",
		"--max-surge", "2", "--max-unavailable", "1", "--progress-deadline", "90s",
		"--min", "2", "--max", "6", "--target-cpu", "60", "--scale-in-stabilization", "1m",
		"--restart-policy", "never", "--label", "app=web", "--env", "A=1", "--", "sleep", "60")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ws := f.writes()
	if len(ws) != 1 || ws[0].Method != "POST" || ws[0].Path != "/v1/projects/demo/instancegroups" || ws[0].Key == "" {
		t.Fatalf("requests %+v", ws)
	}
	var got, want any
	json.Unmarshal([]byte(ws[0].Body), &got)
	json.Unmarshal([]byte(`{"kind":"InstanceGroup","metadata":{"name":"web","project":"demo","creationTimestamp":"0001-01-01T00:00:00Z"},
		"spec":{"template":{"labels":{"app":"web"},"image":"busybox","flavor":"tiny","command":["sleep","60"],"env":["A=1"],
		"networks":[{"network":"default","securityGroups":["web"]}],"keyName":"mine","userData":"#cloud-config\n","restartPolicy":"Never"},
		"count":3,"stateful":true,"placement":{"hostSelector":"zone=a","antiAffinity":"hard"},
		"healthCheck":{"kind":"http","port":8080,"path":"/healthz"},
		"update":{"maxSurge":2,"maxUnavailable":1,"progressDeadlineSeconds":90},
		"autoscaling":{"min":2,"max":6,"targetCPUPercent":60,"scaleInStabilizationSeconds":60}},
		"status":{"desired":0,"members":0,"running":0,"healthy":0,"updated":0}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body\n%s\nwant\n%v", ws[0].Body, want)
	}
	for _, col := range []string{"NAME", "DESIRED", "RUNNING", "HEALTHY", "UPDATED", "REVISION", "ROLLOUT"} {
		if !strings.Contains(r.stdout, col) {
			t.Errorf("output lacks column %s:\n%s", col, r.stdout)
		}
	}
}

func TestGroupBadFlagsSendNothing(t *testing.T) {
	f := newGroupAPI(t)
	base := []string{"group", "create", "web", "--image", "busybox", "--flavor", "tiny"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--health", "grpc:50051"}, `--health: "grpc:50051" is not a health check: use running, tcp:PORT or http:PORT[/PATH]`},
		{[]string{"--health", "tcp"}, "--health: \"tcp\" is not a health check"},
		{[]string{"--health", "tcp:0"}, "--health: \"tcp:0\": port \"0\" is not a number from 1 to 65535"},
		{[]string{"--health", "http:x/y"}, "port \"x\""},
		{[]string{"--count", "-1"}, "--count: -1 is out of range"},
		{[]string{"--anti-affinity", "always"}, "--anti-affinity: \"always\": use hard or soft"},
		{[]string{"--host-selector", "a b"}, "--host-selector:"},
		{[]string{"--min", "5", "--max", "3", "--target-cpu", "50"}, "--min: min 5 is above max 3"},
		{[]string{"--max", "3"}, "--max: autoscaling needs --max and --target-cpu"},
		{[]string{"--max", "3", "--target-cpu", "0"}, "--target-cpu: 0 is out of range"},
		{[]string{"--max-surge", "0"}, "--max-surge: --max-surge and --max-unavailable are both 0"},
		{[]string{"--max-unavailable", "-1"}, "--max-unavailable: -1 is negative"},
		{[]string{"--restart-policy", "sometimes"}, "--restart-policy: \"sometimes\" is not a restart policy"},
		{[]string{"--env", "noequals"}, "--env: \"noequals\" is not KEY=VALUE"},
		{[]string{"--user-data", "/does/not/exist"}, "--user-data:"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, "", append(append([]string(nil), base...), tt.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
	if r := runCLI(t, nil, "", "group", "create", "web", "--flavor", "tiny"); r.code != 1 || !strings.Contains(r.stderr, "--image: required") {
		t.Errorf("without --image: %d %q", r.code, r.stderr)
	}
	if ws := f.writes(); len(ws) != 0 {
		t.Errorf("bad flags sent %+v", ws)
	}
}

func TestGroupScaleUpdateAndRollout(t *testing.T) {
	f := newGroupAPI(t)
	tmpl := api.InstanceTemplate{Image: "demo/busybox", Flavor: "tiny", Command: []string{"sleep", "1"}}
	f.add(&api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Generation: 2}, Spec: api.InstanceGroupSpec{Count: 3,
		Template: api.InstanceTemplate{Image: "demo/busybox", Flavor: "small", Command: []string{"sleep", "2"}}},
		Status: api.InstanceGroupStatus{Revision: 2, Revisions: []api.GroupRevision{{Revision: 1, Template: tmpl},
			{Revision: 2, Template: api.InstanceTemplate{Image: "demo/busybox", Flavor: "small"}}}}})
	f.add(&api.InstanceGroup{Metadata: api.ObjectMeta{Name: "auto"}, Spec: api.InstanceGroupSpec{Count: 2,
		Autoscaling: &api.Autoscaling{Min: 1, Max: 4, TargetCPUPercent: 50}}})

	f.mu.Lock()
	f.conflicts = 1
	f.mu.Unlock()
	if r := runCLI(t, nil, "", "group", "scale", "web", "5"); r.code != 0 || !strings.Contains(r.stdout, "group/web scaled to 5") {
		t.Fatalf("scale: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if g := f.group("web"); g.Spec.Count != 5 {
		t.Errorf("count %d after scale (with a conflict retried)", g.Spec.Count)
	}
	if r := runCLI(t, nil, "", "group", "scale", "auto", "3"); r.code != 1 || !strings.Contains(r.stderr, "autoscaled between 1 and 4") {
		t.Errorf("scale of an autoscaled group: %d %q", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "", "group", "scale", "web", "many"); r.code != 1 || !strings.Contains(r.stderr, `COUNT "many"`) {
		t.Errorf("scale many: %d %q", r.code, r.stderr)
	}

	r := runCLI(t, nil, "", "group", "update", "web", "--image", "nginx", "--health", "tcp:80", "--", "nginx", "-g", "daemon off;")
	if r.code != 0 {
		t.Fatalf("update: %d %q", r.code, r.stderr)
	}
	g := f.group("web")
	if g.Spec.Template.Image != "nginx" || g.Spec.Template.Flavor != "small" || strings.Join(g.Spec.Template.Command, " ") != "nginx -g daemon off;" ||
		g.Spec.HealthCheck != (api.HealthCheck{Kind: "tcp", Port: 80}) || g.Spec.Count != 5 {
		t.Errorf("after update %+v", g.Spec)
	}
	if r := runCLI(t, nil, "", "group", "update", "web"); r.code != 1 || !strings.Contains(r.stderr, "say what to change") {
		t.Errorf("empty update: %d %q", r.code, r.stderr)
	}
	if r := runCLI(t, nil, "", "group", "update", "auto", "--min", "2", "--max", "8"); r.code != 0 {
		t.Errorf("autoscaling bounds: %d %q", r.code, r.stderr)
	} else if a := f.group("auto").Spec.Autoscaling; a.Min != 2 || a.Max != 8 || a.TargetCPUPercent != 50 {
		t.Errorf("autoscaling after update %+v", a)
	}

	for _, step := range []struct {
		verb   string
		paused bool
	}{{"pause", true}, {"resume", false}} {
		if r := runCLI(t, nil, "", "group", "rollout", step.verb, "web"); r.code != 0 || f.group("web").Spec.Paused != step.paused {
			t.Errorf("rollout %s: %d %q, paused %v", step.verb, r.code, r.stderr, f.group("web").Spec.Paused)
		}
	}

	f.mu.Lock()
	f.groups["web"].Spec.Paused = true
	f.mu.Unlock()
	if r := runCLI(t, nil, "", "group", "rollout", "undo", "web"); r.code != 0 || !strings.Contains(r.stdout, "revision 1") {
		t.Fatalf("undo: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if g := f.group("web"); !reflect.DeepEqual(g.Spec.Template, tmpl) || g.Spec.Paused {
		t.Errorf("after undo: template %+v, paused %v", g.Spec.Template, g.Spec.Paused)
	}
	if r := runCLI(t, nil, "", "group", "rollout", "undo", "web", "--to-revision", "7"); r.code != 1 || !strings.Contains(r.stderr, "no revision 7 (kept: 2, 1)") {
		t.Errorf("undo to a missing revision: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "", "group", "rollout", "history", "web")
	if r.code != 0 || !strings.Contains(r.stdout, "REVISION") || !strings.Contains(r.stdout, "sleep 1") {
		t.Errorf("history: %d %q", r.code, r.stdout)
	}

	if r := runCLI(t, nil, "", "group", "delete", "web"); r.code != 0 || !strings.Contains(r.stdout, "instancegroup/web deleted") {
		t.Errorf("delete: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if f.group("web") != nil {
		t.Errorf("group still there after delete")
	}
}

func TestGroupListAndMembers(t *testing.T) {
	f := newGroupAPI(t)
	f.add(&api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Generation: 3}, Spec: api.InstanceGroupSpec{Count: 3},
		Status: api.InstanceGroupStatus{ObservedGeneration: 3, Desired: 3, Running: 3, Healthy: 2, Updated: 1, Revision: 4,
			Rollout: api.RolloutPaused, RolloutReason: "ProgressDeadlineExceeded: web-5 not healthy: refused"}})
	now := time.Now()
	f.mu.Lock()
	f.instances = []api.Instance{
		{Metadata: api.ObjectMeta{Name: "web-0", CreationTimestamp: now, Labels: map[string]string{api.LabelGroup: "web", api.LabelRevision: "3"}},
			Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h1", Interfaces: []api.Interface{{IP: "10.0.0.2"}},
				Conditions: []api.Condition{{Type: api.ConditionHealthy, Status: true}}}},
		{Metadata: api.ObjectMeta{Name: "web-5", CreationTimestamp: now, Labels: map[string]string{api.LabelGroup: "web", api.LabelRevision: "4"}},
			Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h2",
				Conditions: []api.Condition{{Type: api.ConditionHealthy, Status: false, Reason: "ProbeFailed"}}}},
		{Metadata: api.ObjectMeta{Name: "other", Labels: map[string]string{"app": "x"}}},
	}
	f.mu.Unlock()

	r := runCLI(t, nil, "", "group", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("list: %d %q", r.code, r.stdout)
	}
	if got := strings.Fields(lines[1]); strings.Join(got[:7], " ") != "web 3 3 2 1 4 Paused" {
		t.Errorf("row %q", lines[1])
	}
	r = runCLI(t, nil, "", "group", "members", "web")
	if r.code != 0 {
		t.Fatalf("members: %d %q", r.code, r.stderr)
	}
	want := [][]string{{"NAME", "PHASE", "HOST", "HEALTH", "REVISION", "IP", "AGE"},
		{"web-0", "Running", "h1", "healthy", "3", "10.0.0.2"}, {"web-5", "Running", "h2", "unhealthy", "(ProbeFailed)", "4", "-"}}
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("members output:\n%s", r.stdout)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); len(got) < len(w) || !reflect.DeepEqual(got[:len(w)], w) {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
	if q := f.requests[len(f.requests)-1].Query; !strings.Contains(q, "labelSelector=ouro.dev%2Fgroup%3Dweb") {
		t.Errorf("members query %q", q)
	}
}

func TestRolloutStatus(t *testing.T) {
	progress := func(rv int, updated int, state, reason string) api.WatchEvent[api.InstanceGroup] {
		return api.WatchEvent[api.InstanceGroup]{Type: api.Modified, Object: api.InstanceGroup{
			Metadata: api.ObjectMeta{Name: "web", Generation: 2, ResourceVersion: fmt.Sprint(rv)},
			Status: api.InstanceGroupStatus{ObservedGeneration: 2, Desired: 3, Updated: updated, Healthy: 3, Running: 3,
				Revision: 2, Rollout: state, RolloutReason: reason}}}
	}
	start := &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Generation: 2}, Status: api.InstanceGroupStatus{ObservedGeneration: 1}}

	t.Run("complete", func(t *testing.T) {
		f := newGroupAPI(t)
		f.add(start)
		f.watch = []api.WatchEvent[api.InstanceGroup]{
			progress(20, 1, api.RolloutProgressing, ""),
			{Type: api.Modified, Object: api.InstanceGroup{Metadata: api.ObjectMeta{Name: "other"}}},
			progress(21, 3, api.RolloutComplete, "")}
		r := runCLI(t, nil, "", "group", "rollout", "status", "web", "--watch")
		if r.code != 0 {
			t.Fatalf("exit %d: %q", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		want := []string{"group/web: waiting for the controller to see generation 2",
			"group/web revision 2: 1 of 3 members updated, 3 healthy, 3 running: Progressing",
			"group/web revision 2: 3 of 3 members updated, 3 healthy, 3 running: Complete"}
		if !reflect.DeepEqual(lines, want) {
			t.Errorf("output\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("paused", func(t *testing.T) {
		f := newGroupAPI(t)
		f.add(start)
		f.watch = []api.WatchEvent[api.InstanceGroup]{progress(20, 1, api.RolloutPaused, "ProgressDeadlineExceeded: web-3 not healthy: refused")}
		r := runCLI(t, nil, "", "group", "rollout", "status", "web", "-w")
		if r.code != 1 || !strings.Contains(r.stderr, "rollout paused: group web: ProgressDeadlineExceeded: web-3 not healthy: refused") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("once", func(t *testing.T) {
		f := newGroupAPI(t)
		ev := progress(20, 2, api.RolloutProgressing, "")
		f.add(&ev.Object)
		r := runCLI(t, nil, "", "group", "rollout", "status", "web")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "group/web revision 2: 2 of 3 members updated, 3 healthy, 3 running: Progressing" {
			t.Errorf("exit %d, stdout %q", r.code, r.stdout)
		}
	})
}
