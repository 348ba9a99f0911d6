package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/cli/output"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/internal/syncbuf"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// seedInstances stores web-1, running on host-a for three minutes, and
// db-with-a-long-name, pending for two days.
func seedInstances(t *testing.T, c *cloud) {
	t.Helper()
	now := time.Now()
	c.addInstance(t, api.Instance{
		Metadata: api.ObjectMeta{Name: "web-1", Project: "demo", Labels: map[string]string{"app": "web"}},
		Spec:     api.InstanceSpec{Image: "demo/alpine", Flavor: "small"},
		Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "host-a",
			Interfaces: []api.Interface{{Network: "default", IP: "10.0.0.5"}}},
	})
	c.addInstance(t, api.Instance{
		Metadata: api.ObjectMeta{Name: "db-with-a-long-name", Project: "demo"},
		Spec:     api.InstanceSpec{Image: "demo/postgres", Flavor: "large"},
		Status: api.InstanceStatus{Phase: api.PhasePending,
			Interfaces: []api.Interface{{Network: "default", IP: "10.0.0.6"}}},
	})
	c.backdate(t, api.InstanceKind, "web-1", now.Add(-3*time.Minute))
	c.backdate(t, api.InstanceKind, "db-with-a-long-name", now.Add(-50*time.Hour))
}

func TestInstanceListOutputFormats(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)

	t.Run("table", func(t *testing.T) {
		r := runCLI(t, nil, "", "instance", "list")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("want header and 2 rows, got:\n%s", r.stdout)
		}
		for _, col := range []string{"NAME", "PHASE", "HOST", "IMAGE", "FLAVOR", "IP", "AGE"} {
			if !strings.Contains(lines[0], col) {
				t.Errorf("header %q lacks %s", lines[0], col)
			}
		}
		// Columns are aligned: each row's phase starts under PHASE.
		at := strings.Index(lines[0], "PHASE")
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l[at:], "Running") && !strings.HasPrefix(l[at:], "Pending") {
				t.Errorf("row not aligned under PHASE:\n%s\n%s", lines[0], l)
			}
		}
		web := lines[1]
		if strings.HasPrefix(lines[1], "db") {
			web = lines[2]
		}
		for _, want := range []string{"web-1", "host-a", "demo/alpine", "small", "10.0.0.5", "3m"} {
			if !strings.Contains(web, want) {
				t.Errorf("row %q lacks %q", web, want)
			}
		}
		if !strings.Contains(r.stdout, "2d") {
			t.Errorf("want the 50h old instance shown as 2d:\n%s", r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, nil, "", "instance", "list", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var l output.List[api.Instance]
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
		}
		if l.Kind != "InstanceList" || len(l.Items) != 2 {
			t.Fatalf("got kind %q with %d items, want InstanceList with 2", l.Kind, len(l.Items))
		}
		if !strings.Contains(r.stdout, "\n  \"items\"") {
			t.Errorf("JSON is not indented:\n%s", r.stdout)
		}
	})

	t.Run("yaml", func(t *testing.T) {
		r := runCLI(t, nil, "", "instance", "list", "-o", "yaml", "-l", "app=web")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var l output.List[api.Instance]
		if err := yaml.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, r.stdout)
		}
		if len(l.Items) != 1 || l.Items[0].Status.Phase != api.PhaseRunning {
			t.Fatalf("want only web-1 (selector app=web), Running; got %+v", l.Items)
		}
		if !strings.Contains(r.stdout, "phase: Running") {
			t.Errorf("YAML lacks phase: Running:\n%s", r.stdout)
		}
	})

	t.Run("get json", func(t *testing.T) {
		r := runCLI(t, nil, "", "instance", "get", "web-1", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var inst api.Instance
		if err := json.Unmarshal([]byte(r.stdout), &inst); err != nil {
			t.Fatal(err)
		}
		if inst.Status.Phase != api.PhaseRunning || inst.Status.Host != "host-a" {
			t.Fatalf("got status %+v", inst.Status)
		}
	})

	t.Run("list sends the context's project and token", func(t *testing.T) {
		reqs := c.requestsSeen()
		last := reqs[len(reqs)-1]
		if last.Path != "/v1/projects/demo/instances/web-1" || last.Auth != "Bearer "+c.Admin {
			t.Fatalf("last request %+v", last)
		}
	})
}

func TestInstanceCreateCountIdempotencyKeys(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.mu.Lock()
	c.dropFirst = true
	c.mu.Unlock()

	r := runCLI(t, nil, "", "instance", "create", "web", "--image", "alpine", "--flavor", "small",
		"--count", "3", "--label", "app=web", "--env", "A=1", "--", "sleep", "60")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var posts []request
	for _, q := range c.requestsSeen() {
		if q.Method == "POST" {
			posts = append(posts, q)
		}
	}
	if len(posts) < 6 {
		t.Fatalf("want each of 3 creates sent twice (first answer dropped), got %d POSTs", len(posts))
	}
	distinct := map[string]int{} // attempts by key
	for _, p := range posts {
		if p.Key == "" {
			t.Fatalf("create without Idempotency-Key: %+v", p)
		}
		distinct[p.Key]++
	}
	if len(distinct) != 3 {
		t.Fatalf("want 3 distinct keys reused by retries, got %d: %v", len(distinct), distinct)
	}
	for key, n := range distinct {
		if n < 2 {
			t.Errorf("key %s tried %d times, want a retry after the dropped connection", key, n)
		}
	}
	got := c.instances(t)
	if len(got) != 3 {
		t.Fatalf("want exactly 3 instances despite retries, got %d", len(got))
	}
	for i, inst := range got {
		want := "web-" + string(rune('1'+i))
		if inst.Metadata.Name != want {
			t.Errorf("instance %d is %s, want %s", i, inst.Metadata.Name, want)
		}
		if strings.Join(inst.Spec.Command, " ") != "sleep 60" || inst.Metadata.Labels["app"] != "web" || inst.Spec.Env[0] != "A=1" {
			t.Errorf("instance %s: command %q labels %v env %v", inst.Metadata.Name, inst.Spec.Command, inst.Metadata.Labels, inst.Spec.Env)
		}
	}
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		if !strings.Contains(r.stdout, n) {
			t.Errorf("output lacks %s:\n%s", n, r.stdout)
		}
	}

	// A second invocation uses fresh keys.
	r = runCLI(t, nil, "", "instance", "create", "other", "--image", "alpine", "--flavor", "small")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	reqs := c.requestsSeen()
	if k := reqs[len(reqs)-1].Key; distinct[k] > 0 || k == "" {
		t.Errorf("second invocation reused key %q", k)
	}
	if !strings.Contains(r.stdout, "other") || strings.Contains(r.stdout, "other-1") {
		t.Errorf("--count 1 should create NAME alone:\n%s", r.stdout)
	}
}

func TestInstanceCreateWait(t *testing.T) {
	exit := 2
	tests := []struct {
		name     string
		final    api.InstanceStatus
		wantCode int
		want     []string
	}{
		{"running", api.InstanceStatus{Phase: api.PhaseRunning, Host: "host-b"}, 0,
			[]string{"instance/app-1 is Running on host-b", "instance/app-2 is Running on host-b"}},
		{"failed", api.InstanceStatus{Phase: api.PhaseFailed, Reason: api.ReasonImageFetchFailed, Message: "blob missing"}, 1,
			[]string{"Error: instance app-1 failed: ImageFetchFailed: blob missing"}},
		{"exited", api.InstanceStatus{Phase: api.PhaseStopped, Reason: api.ReasonExited, ExitCode: &exit}, 1,
			[]string{"exited with code 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCloud(t)
			c.useConfig(t)
			c.playAgent(t, tt.final)
			r := runCLI(t, nil, "", "instance", "create", "app", "--image", "alpine", "--flavor", "small",
				"--count", "2", "--wait", "--timeout", "20s")
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			all := r.stdout + r.stderr
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestInstanceCreateWaitJSON(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.playAgent(t, api.InstanceStatus{Phase: api.PhaseRunning, Host: "host-c"})
	r := runCLI(t, nil, "", "-o", "json", "instance", "create", "solo", "--image", "alpine", "--flavor", "small", "--wait")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var inst api.Instance
	if err := json.Unmarshal([]byte(r.stdout), &inst); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
	}
	if inst.Status.Phase != api.PhaseRunning || inst.Status.Host != "host-c" {
		t.Fatalf("want the final Running state, got %+v", inst.Status)
	}
	if !strings.Contains(r.stderr, "solo is Running") {
		t.Errorf("progress should go to stderr with -o json; stderr: %s", r.stderr)
	}
}

func TestInstanceDeleteWait(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	c.playAgent(t, api.InstanceStatus{})
	r := runCLI(t, nil, "", "instance", "delete", "web-1", "--wait", "--timeout", "20s")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "instance/web-1 deleted") {
		t.Fatalf("stdout: %s", r.stdout)
	}
	if c.instance(t, "web-1") != nil {
		t.Fatal("web-1 still exists")
	}

	r = runCLI(t, nil, "", "instance", "delete", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, `Instance "nope" not found`) {
		t.Fatalf("deleting a missing instance: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestExecPropagatesExitCodeAndStdin(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	calls := make(chan execCall, 1)
	c.serveAgent(t, api.ExecResponse{ExitCode: 3, Stdout: []byte("out\n"), Stderr: []byte("err\n")}, calls)
	r := runCLI(t, nil, "hello", "instance", "exec", "web-1", "--", "sh", "-c", "cat; exit 3")
	if r.code != 3 {
		t.Fatalf("exit %d, want the command's 3 (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	call := <-calls
	if string(call.stdin) != "hello" || strings.Join(call.command, "|") != "sh|-c|cat; exit 3" {
		t.Fatalf("sent stdin %q command %q", call.stdin, call.command)
	}
}

func TestExecTTYPropagatesExitCode(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	c.serveAgent(t, api.ExecResponse{}, nil)
	// Input from a pipe is typed, then Ctrl-D; the size is the default.
	r := runCLI(t, nil, "ls\r", "instance", "exec", "-it", "web-1", "--", "sh", "-l")
	if r.code != 5 {
		t.Fatalf("exit %d, want the command's 5 (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "tty: sh -l 24x80\r\nls\r" {
		t.Errorf("stdout %q", r.stdout)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"instance", "exec", "-i", "web-1", "--", "sh"}, "-i goes with -t"},
		{[]string{"instance", "exec", "-t", "--timeout", "1m", "web-1", "--", "sh"}, "runs until it ends"},
	} {
		if r := runCLI(t, nil, "", tt.args...); r.code != 1 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 1 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

func TestAPIErrorsShowFieldAndHint(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.fail("POST /v1/projects/demo/instances", &api.Error{Status: 400, Code: api.CodeInvalid,
		Message: `flavor "huge" not found`, Field: "spec.flavor", Hint: "see ouro flavor list"})
	r := runCLI(t, nil, "", "instance", "create", "x", "--image", "alpine", "--flavor", "huge")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	want := "Error: flavor \"huge\" not found (field: spec.flavor; hint: see ouro flavor list)\n"
	if r.stderr != want {
		t.Fatalf("stderr %q\nwant   %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("stdout should be empty, got %q", r.stdout)
	}
}

func TestBadInputRefusedBeforeAnyRequest(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"instance", "list", "-o", "xml"}, "--output"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--count", "0"}, "--count: 0 is out of range: use 1 to 100"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--count", "101"}, "--count"},
		{[]string{"instance", "create", "a", "--flavor", "f"}, "--image"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--label", "novalue"}, "--label"},
		{[]string{"instance", "create", "a", "--image", "i", "--flavor", "f", "--env", "=x"}, "--env"},
		{[]string{"instance", "create", "Bad_Name", "--image", "i", "--flavor", "f"}, "instance name"},
		{[]string{"instance", "create", "a", "b", "--image", "i", "--flavor", "f"}, "put the command after --"},
		{[]string{"instance", "list", "-l", "bad key!"}, "--selector"},
		{[]string{"flavor", "create", "tiny", "--vcpus", "0", "--memory", "64"}, "--vcpus: 0 is not positive"},
		{[]string{"flavor", "create", "tiny", "--vcpus", "1", "--memory", "0"}, "--memory"},
		{[]string{"token", "create", "--role", "boss"}, "--role"},
		{[]string{"host", "join-token", "--ttl", "-1h"}, "--ttl"},
		{[]string{"events", "--for", "web-1"}, "--for"},
		{[]string{"instance", "get"}, "wants NAME"},
		{[]string{"instance", "exec", "web-1"}, "COMMAND"},
		{[]string{"instance", "list", "--bogus"}, "unknown flag"},
	}
	c := newCloud(t)
	c.useConfig(t)
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c.rec.Reset()
			r := runCLI(t, nil, "", tt.args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1", r.code)
			}
			if !strings.Contains(r.stderr, tt.want) || !strings.HasPrefix(r.stderr, "Error: ") {
				t.Fatalf("stderr %q lacks %q", r.stderr, tt.want)
			}
			if n := len(c.requestsSeen()); n != 0 {
				t.Fatalf("%d request(s) sent for bad input", n)
			}
		})
	}
}

func TestNoConfig(t *testing.T) {
	t.Setenv(clientconfig.EnvConfig, filepath.Join(t.TempDir(), "none.yaml"))
	t.Setenv(command.EnvToken, "")
	t.Setenv(command.EnvServer, "")
	r := runCLI(t, nil, "", "instance", "list")
	want := "Error: no cloud configured: run `ouro up` or set OURO_CONFIG\n"
	if r.code != 1 || r.stderr != want {
		t.Fatalf("exit %d stderr %q, want %q", r.code, r.stderr, want)
	}
	// Commands that need no cloud still work.
	if r := runCLI(t, nil, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "ouro ") {
		t.Fatalf("version: exit %d stdout %q", r.code, r.stdout)
	}
	if r := runCLI(t, nil, "", "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "ouro") {
		t.Fatalf("completion bash: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestTokenOverrides(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.Project(t, "other")
	alice := c.Token(t, "alice", "demo", api.RoleAdmin)
	bob := c.Token(t, "bob", "other", api.RoleMember)
	if r := runCLI(t, nil, "", "--token", alice, "whoami"); r.code != 0 || !strings.Contains(r.stdout, "alice") {
		t.Fatalf("whoami: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	t.Setenv(command.EnvToken, bob)
	if r := runCLI(t, nil, "", "--project", "other", "instance", "list"); r.code != 0 {
		t.Fatalf("list: exit %d %s", r.code, r.stderr)
	}
	var reqs []request
	for _, q := range c.requestsSeen() {
		if q.Path != "/v1/projects" && q.Path != "/v1/tokens" {
			reqs = append(reqs, q)
		}
	}
	if reqs[0].Auth != "Bearer "+alice || reqs[1].Auth != "Bearer "+bob {
		t.Fatalf("authorization headers %q, %q", reqs[0].Auth, reqs[1].Auth)
	}
	if reqs[1].Path != "/v1/projects/other/instances" {
		t.Fatalf("--project not used: %s", reqs[1].Path)
	}
}

func TestServerFromEnvironmentWithoutConfig(t *testing.T) {
	c := newCloud(t)
	t.Setenv(clientconfig.EnvConfig, filepath.Join(t.TempDir(), "none.yaml"))
	t.Setenv(command.EnvServer, c.URL)
	t.Setenv(command.EnvToken, c.Admin)
	r := runCLI(t, nil, "", "instance", "list", "-A")
	if r.code != 0 || !strings.Contains(r.stderr, "No instances found") {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if p := c.requestsSeen()[0].Path; p != "/v1/instances" {
		t.Fatalf("--all-projects listed %s", p)
	}
}

func TestTokenAndJoinTokenShowSecretOnce(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	r := runCLI(t, nil, "", "token", "create", "--role", "member", "--user", "ci", "--ttl", "720h")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, w := range []string{"ouro_", "not shown again", "project demo"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("token output lacks %q:\n%s", w, r.stdout)
		}
	}
	r = runCLI(t, nil, "", "host", "join-token", "--ttl", "2h")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if want := "ouro agent --server " + c.URL + " --join-token ouro_"; !strings.Contains(r.stdout, want) {
		t.Fatalf("join-token output lacks %q:\n%s", want, r.stdout)
	}
}

func TestLogsPassesTail(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	c.serveAgent(t, api.ExecResponse{}, nil)
	r := runCLI(t, nil, "", "instance", "logs", "web-1", "--tail", "5")
	if r.code != 0 || r.stdout != "log of web-1 tail=5\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestEvents(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	now := time.Now()
	for _, ev := range []api.Event{
		{Metadata: api.ObjectMeta{Name: "e2", UID: "2"}, Object: api.ObjectRef{Kind: "Instance", Name: "web-1"},
			Type: api.EventNormal, Reason: "Started", Message: "running", Source: "agent/host-a", Time: now.Add(-5 * time.Second)},
		{Metadata: api.ObjectMeta{Name: "e1", UID: "1"}, Object: api.ObjectRef{Kind: "Instance", Name: "web-1"},
			Type: api.EventNormal, Reason: "Scheduled", Message: "placed on host-a", Source: "scheduler", Time: now.Add(-2 * time.Hour)},
		{Metadata: api.ObjectMeta{Name: "e3", UID: "3"}, Object: api.ObjectRef{Kind: "Instance", Name: "db"},
			Type: api.EventWarning, Reason: "CrashLoop", Message: "restarting", Source: "agent/host-b", Time: now},
	} {
		ev.Metadata.Project = "demo"
		c.add(t, &ev)
	}
	r := runCLI(t, nil, "", "events", "--for", "instance/web-1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "SOURCE") {
		t.Fatalf("want header and 2 events:\n%s", r.stdout)
	}
	if !strings.Contains(lines[1], "Scheduled") || !strings.Contains(lines[2], "Started") || !strings.HasPrefix(lines[1], "2h") {
		t.Fatalf("events not in time order or ages wrong:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "CrashLoop") {
		t.Fatalf("--for did not filter:\n%s", r.stdout)
	}

	// --watch prints the list, then streamed events, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := NewRootCommand()
	var out, errb syncbuf.Buffer
	root.SetArgs([]string{"events", "--watch", "--for", "instance/web-1"})
	root.SetOut(&out)
	root.SetErr(&errb)
	done := make(chan int, 1)
	go func() { done <- Execute(ctx, root) }()
	wait.For(t, 20*time.Second, "the list printed", func() bool { return strings.Contains(out.String(), "Scheduled") })
	c.add(t, &api.Event{Metadata: api.ObjectMeta{Name: "e4", Project: "demo"},
		Object: api.ObjectRef{Kind: "Instance", Name: "web-1"}, Type: api.EventNormal, Reason: "Rebooted", Source: "agent/host-a", Time: now})
	wait.For(t, 20*time.Second, "the watched event printed", func() bool { return strings.Contains(out.String(), "Rebooted") })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("events --watch ended with %d after interrupt: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "Scheduled") {
		t.Fatalf("watch did not start with the list:\n%s", out.String())
	}
}

func TestCompletionOfNames(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	r := runCLI(t, nil, "", "__complete", "instance", "get", "w")
	if r.code != 0 || !strings.Contains(r.stdout, "web-1\n") || strings.Contains(r.stdout, "db-with") {
		t.Fatalf("instance completion: exit %d stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, nil, "", "__complete", "instance", "create", "x", "--flavor", "")
	if !strings.Contains(r.stdout, "small\n") || !strings.Contains(r.stdout, "large\n") {
		t.Fatalf("flavor completion: stdout %q", r.stdout)
	}
}

func TestFlavorCreateSendsResources(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	r := runCLI(t, nil, "", "flavor", "create", "xlarge", "--vcpus", "2", "--memory", "2048", "--disk", "20", "-o", "yaml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var fl api.Flavor
	if err := yaml.Unmarshal([]byte(r.stdout), &fl); err != nil {
		t.Fatal(err)
	}
	if fl.Spec != (api.Resources{VCPUs: 2, MemoryMiB: 2048, DiskGiB: 20}) || fl.Metadata.Name != "xlarge" {
		t.Fatalf("got %+v", fl)
	}
	r = runCLI(t, nil, "", "flavor", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "8192 MiB") {
		t.Fatalf("flavor list: exit %d stdout %q", r.code, r.stdout)
	}
}

// main may call root.Execute() directly; errors must still read well.
func TestPlainCobraExecutePrintsFormattedErrors(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.fail("POST /v1/flavors", &api.Error{Status: 400, Code: api.CodeInvalid,
		Message: "memory too small", Field: "spec.memoryMiB", Hint: "use at least 64"})
	root := NewRootCommand()
	var out, errb syncbuf.Buffer
	root.SetArgs([]string{"flavor", "create", "tiny", "--vcpus", "1", "--memory", "32"})
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.Execute(); err == nil {
		t.Fatal("want an error")
	}
	want := "Error: memory too small (field: spec.memoryMiB; hint: use at least 64)\n"
	if errb.String() != want {
		t.Fatalf("stderr %q\nwant   %q", errb.String(), want)
	}
}
