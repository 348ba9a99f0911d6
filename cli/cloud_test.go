package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/command"
	"github.com/ouroboros-cloud/ouro/clientconfig"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/syncbuf"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/store"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// request is what the API server was sent.
type request = apitest.Request

// cloud is the real API server over an embedded etcd that the CLI tests
// talk to, with a recorder in front that keeps what the CLI sent. Project
// demo exists, with images alpine and busybox.
type cloud struct {
	*apitest.Server
	rec apitest.Recorder

	mu sync.Mutex
	// dropFirst closes the connection on the first instance create with
	// each idempotency key, after the server made the instance.
	dropFirst bool
	tried     map[string]bool
	// refuseCreate answers a create of an instance of one of these names
	// with 503, as a server that died would leave the CLI.
	refuseCreate map[string]bool
}

// newCloud starts a cloud for the rest of the test.
func newCloud(t *testing.T) *cloud {
	t.Helper()
	c := &cloud{tried: map[string]bool{}}
	c.Server = apitest.Start(t, apitest.Config{Wrap: func(h http.Handler) http.Handler {
		return c.rec.Wrap(c.dropper(h))
	}})
	c.Project(t, "demo")
	for _, name := range []string{"alpine", "busybox"} {
		c.add(t, &api.Image{Metadata: api.ObjectMeta{Name: name, Project: "demo"},
			Spec:   api.ImageSpec{Format: api.FormatOCI},
			Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}})
	}
	c.rec.Reset()
	return c
}

// dropper wraps h to lose the answer to first create attempts when
// c.dropFirst is set: the client must retry with the same key and get the
// instance made the first time.
func (c *cloud) dropper(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if c.refused(r) {
			writeJSON(w, http.StatusServiceUnavailable, api.ErrorBody{Error: &api.Error{
				Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "the server is going away"}})
			return
		}
		c.mu.Lock()
		drop := c.dropFirst && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/instances") && key != "" && !c.tried[key]
		c.tried[key] = true
		c.mu.Unlock()
		if !drop {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	})
}

// refused reports whether r creates an instance whose name is in
// c.refuseCreate; it leaves r's body readable.
func (c *cloud) refused(r *http.Request) bool {
	c.mu.Lock()
	names := c.refuseCreate
	c.mu.Unlock()
	if len(names) == 0 || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/instances") {
		return false
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in api.Instance
	json.Unmarshal(body, &in)
	return names[in.Metadata.Name]
}

// requestsSeen returns what the CLI sent so far.
func (c *cloud) requestsSeen() []request { return c.rec.Requests() }

// fail makes the server answer every request to route ("METHOD /path")
// with e.
func (c *cloud) fail(route string, e *api.Error) { c.rec.Fail(route, e) }

// add stores obj as it is, status included, as the agents and
// controllers would.
func (c *cloud) add(t *testing.T, obj api.Object) {
	t.Helper()
	if _, err := c.Store.Create(context.Background(), obj, store.CreateOptions{}); err != nil {
		t.Fatalf("store %s %s: %v", obj.GetKind(), obj.Meta().Name, err)
	}
}

// addInstance stores an instance as if created and run earlier.
func (c *cloud) addInstance(t *testing.T, inst api.Instance) {
	t.Helper()
	c.add(t, &inst)
}

// remove deletes a stored object.
func (c *cloud) remove(t *testing.T, kind *api.Kind, project, name string) {
	t.Helper()
	if err := c.Store.Delete(context.Background(), kind, project, name, ""); err != nil {
		t.Fatalf("delete %s %s: %v", kind.Name, name, err)
	}
}

// object returns the stored object, or nil if there is none.
func (c *cloud) object(t *testing.T, kind *api.Kind, project, name string) api.Object {
	t.Helper()
	obj := kind.New()
	if err := c.Store.Get(context.Background(), kind, project, name, obj); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		t.Fatalf("get %s %s: %v", kind.Name, name, err)
	}
	return obj
}

// backdate makes the object name of project demo look created at when
// (the store stamps creation times itself).
func (c *cloud) backdate(t *testing.T, kind *api.Kind, name string, when time.Time) {
	t.Helper()
	ctx := context.Background()
	key := "/ouro/v1/" + kind.Plural + "/demo/" + name
	resp, err := c.Etcd.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v (%d keys)", key, err, len(resp.Kvs))
	}
	var obj map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &obj); err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	obj["metadata"].(map[string]any)["creationTimestamp"] = when.UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Etcd.Put(ctx, key, string(b)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// instance returns the stored instance of project demo, or nil.
func (c *cloud) instance(t *testing.T, name string) *api.Instance {
	t.Helper()
	if obj := c.object(t, api.InstanceKind, "demo", name); obj != nil {
		return obj.(*api.Instance)
	}
	return nil
}

// instances returns the instances of project demo, by name.
func (c *cloud) instances(t *testing.T) []*api.Instance {
	t.Helper()
	objs, _, err := c.Store.List(context.Background(), api.InstanceKind, "demo", store.ListOptions{})
	if err != nil {
		t.Fatalf("list instances: %v", err)
	}
	out := make([]*api.Instance, len(objs))
	for i, o := range objs {
		out[i] = o.(*api.Instance)
	}
	return out
}

// playAgent plays the agents until the test ends: from now on, every
// instance of project demo not yet placed gets status final, and every
// terminating one is removed.
func (c *cloud) playAgent(t *testing.T, final api.InstanceStatus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events, err := c.Store.Watch(ctx, api.InstanceKind, "demo", 0)
	if err != nil {
		cancel()
		t.Fatalf("watch instances: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ev := range events {
			in, ok := ev.Object.(*api.Instance)
			if !ok || ev.Type == api.Deleted {
				continue
			}
			switch {
			case in.Status.Phase == api.PhaseTerminating:
				c.Store.Delete(ctx, api.InstanceKind, "demo", in.Metadata.Name, in.Metadata.ResourceVersion)
			case in.Status.Host == "" && in.Status.Phase != final.Phase:
				in.Status = final
				c.Store.Update(ctx, in)
			}
		}
	}()
}

// execCall is what the agent was asked to run.
type execCall struct {
	stdin   []byte
	command []string
}

// serveAgent joins host-a with an agent that answers exec with answer
// (recording the calls on calls) and logs with a line naming the
// instance and the tail asked for.
func (c *cloud) serveAgent(t *testing.T, answer api.ExecResponse, calls chan<- execCall) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/instances/{uid}/exec", func(w http.ResponseWriter, r *http.Request) {
		if upgrade.Requested(r, api.ExecTTYProtocol) {
			serveTerminal(w, r)
			return
		}
		var req api.ExecRequest
		json.NewDecoder(r.Body).Decode(&req)
		if calls != nil {
			calls <- execCall{stdin: req.Stdin, command: req.Command}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
	})
	mux.HandleFunc("GET /v1/instances/{uid}/logs", func(w http.ResponseWriter, r *http.Request) {
		name := "?"
		for _, in := range c.instances(t) {
			if in.Metadata.UID == r.PathValue("uid") {
				name = in.Metadata.Name
			}
		}
		fmt.Fprintf(w, "log of %s tail=%s\n", name, r.URL.Query().Get("tail"))
	})
	mux.HandleFunc("POST /v1/instances/{uid}/crash", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	c.Agent(t, "host-a", mux)
}

// serveTerminal is the agent's terminal: it says its command and size,
// echoes what is typed, and ends with exit code 5 at Ctrl-D.
func serveTerminal(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	conn, err := upgrade.Accept(w, api.ExecTTYProtocol)
	if err != nil {
		return
	}
	defer conn.Close()
	fw, fr := ttyframe.NewWriter(conn), ttyframe.NewReader(conn)
	fmt.Fprintf(fw, "tty: %s %sx%s\r\n", strings.Join(q["command"], " "), q.Get("rows"), q.Get("cols"))
	for {
		f, err := fr.Next()
		if err != nil || f.Type != ttyframe.Data {
			return
		}
		if i := bytes.IndexByte(f.Payload, 0x04); i >= 0 {
			fw.Write(f.Payload[:i])
			fw.Exit(5)
			return
		}
		fw.Write(f.Payload)
	}
}

// useConfig points the CLI at the server as the admin, in project demo,
// with a config file, and clears the environment overrides.
func (c *cloud) useConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := &clientconfig.Config{}
	cfg.Upsert(clientconfig.Context{Name: "test", Server: c.URL, Token: c.Admin, Project: "demo"}, true)
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	t.Setenv(clientconfig.EnvConfig, path)
	t.Setenv(command.EnvToken, "")
	t.Setenv(command.EnvServer, "")
	return path
}

// result is what one run of the CLI produced.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the ouro command with args and stdin.
func runCLI(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
	}
	root := NewRootCommand()
	var out, errb syncbuf.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	code := Execute(ctx, root)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// writeJSON answers with v as JSON, for the tests' own handlers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
