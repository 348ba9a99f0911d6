package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/clientconfig"
)

// request is what the fake API saw.
type request struct {
	Method, Path, Query, Key, Auth string
	// Body is the request body as sent.
	Body string
}

// fakeAPI is an in-memory stand-in for the REST API, enough for the CLI.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	requests  []request
	rv        int
	instances map[string]*api.Instance // by name
	byKey     map[string]string        // idempotency key → instance name
	attempts  map[string]int           // idempotency key → attempts seen

	// refuseCreate answers creates of these instance names with an
	// internal error, as a server that went away would leave them undone.
	refuseCreate map[string]bool
	// dropFirstAttempt closes the connection on the first create with each
	// idempotency key, before answering.
	dropFirstAttempt bool
	// final is the status the fake "agent" gives every live instance when a
	// watch starts.
	final api.InstanceStatus
	// events are served by the events list and watch.
	events []api.Event
	// watchEvents are sent on an events watch.
	watchEvents []api.Event
	// exec answers instance exec; execStdin records what was sent.
	exec      api.ExecResponse
	execStdin []byte
	execCmd   []string
	// errorFor answers requests to a path with an API error.
	errorFor map[string]*api.Error
	// objects holds networks, security groups, floating IPs, pools and
	// hosts by plural and "project/name" (see objects_test.go).
	objects map[string]map[string]api.Object
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, instances: map[string]*api.Instance{}, byKey: map[string]string{},
		attempts: map[string]int{}, errorFor: map[string]*api.Error{}, objects: map[string]map[string]api.Object{}, rv: 100}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/projects/{p}/instances", f.listInstances)
	mux.HandleFunc("GET /v1/instances", f.listInstances)
	mux.HandleFunc("POST /v1/projects/{p}/instances", f.createInstance)
	mux.HandleFunc("GET /v1/projects/{p}/instances/{name}", f.getInstance)
	mux.HandleFunc("DELETE /v1/projects/{p}/instances/{name}", f.deleteInstance)
	mux.HandleFunc("POST /v1/projects/{p}/instances/{name}/exec", f.execInstance)
	mux.HandleFunc("GET /v1/projects/{p}/instances/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "log of %s tail=%s\n", r.PathValue("name"), r.URL.Query().Get("tail"))
	})
	mux.HandleFunc("GET /v1/projects/{p}/events", f.listEvents)
	mux.HandleFunc("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.Whoami{User: "alice", Roles: map[string]api.Role{"demo": api.RoleAdmin}})
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req api.TokenRequest
		json.NewDecoder(r.Body).Decode(&req)
		writeJSON(w, 201, api.Token{Kind: "Token", Metadata: api.ObjectMeta{Name: "t1"},
			Spec: api.TokenSpec{User: req.User}, Status: api.TokenStatus{Secret: "ouro_t1_s3cret"}})
	})
	mux.HandleFunc("POST /v1/jointokens", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 201, api.JoinToken{Kind: "JoinToken", Metadata: api.ObjectMeta{Name: "j1"},
			Spec: api.JoinTokenSpec{ExpiresAt: time.Now().Add(time.Hour)}, Status: api.TokenStatus{Secret: "ouro_j1_joinme"}})
	})
	mux.HandleFunc("POST /v1/flavors", func(w http.ResponseWriter, r *http.Request) {
		var fl api.Flavor
		json.NewDecoder(r.Body).Decode(&fl)
		writeJSON(w, 201, fl)
	})
	mux.HandleFunc("GET /v1/flavors", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.List[api.Flavor]{Kind: "FlavorList", Items: []api.Flavor{
			{Kind: "Flavor", Metadata: api.ObjectMeta{Name: "small"}, Spec: api.Resources{VCPUs: 1, MemoryMiB: 512, DiskGiB: 5}},
			{Kind: "Flavor", Metadata: api.ObjectMeta{Name: "large"}, Spec: api.Resources{VCPUs: 8, MemoryMiB: 16384, DiskGiB: 100}},
		}})
	})
	f.serveObjects(mux)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Key: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"), Body: string(body)})
		e := f.errorFor[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if e != nil {
			writeJSON(w, e.Status, api.ErrorBody{Error: e})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) nextRV() string {
	f.rv++
	return strconv.Itoa(f.rv)
}

// addInstance stores an instance as if created earlier.
func (f *fakeAPI) addInstance(inst api.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst.Kind = "Instance"
	inst.Metadata.ResourceVersion = f.nextRV()
	f.instances[inst.Metadata.Name] = &inst
}

func (f *fakeAPI) requestsSeen() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

func (f *fakeAPI) sortedInstances(project string) []api.Instance {
	var out []api.Instance
	for _, inst := range f.instances {
		if project == "" || inst.Metadata.Project == project {
			out = append(out, *inst)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

func (f *fakeAPI) listInstances(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("p")
	if r.URL.Query().Get("watch") == "true" {
		f.watchInstances(w, r, project)
		return
	}
	f.mu.Lock()
	items := f.sortedInstances(project)
	if sel := r.URL.Query().Get("labelSelector"); sel != "" {
		s, _ := api.ParseSelector(sel)
		var kept []api.Instance
		for _, it := range items {
			if s.Matches(it.Metadata.Labels) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	rv := strconv.Itoa(f.rv)
	f.mu.Unlock()
	// Two pages, to exercise ListAll.
	if r.URL.Query().Get("continue") == "" && len(items) > 1 {
		writeJSON(w, 200, api.List[api.Instance]{Kind: "InstanceList", Metadata: api.ListMeta{ResourceVersion: rv, Continue: "page2"}, Items: items[:1]})
		return
	}
	if r.URL.Query().Get("continue") == "page2" {
		items = items[1:]
	}
	writeJSON(w, 200, api.List[api.Instance]{Kind: "InstanceList", Metadata: api.ListMeta{ResourceVersion: rv}, Items: items})
}

// watchInstances plays the agent: it moves every live instance to
// f.final, and removes terminating ones, sending the events; then it holds
// the stream open until the client goes away.
func (f *fakeAPI) watchInstances(w http.ResponseWriter, r *http.Request, project string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	f.mu.Lock()
	var lines [][]byte
	for _, inst := range f.sortedInstances(project) {
		typ := api.Modified
		if inst.Status.Phase == api.PhaseTerminating {
			typ = api.Deleted
			delete(f.instances, inst.Metadata.Name)
		} else {
			inst.Status = f.final
			f.instances[inst.Metadata.Name].Status = f.final
		}
		inst.Metadata.ResourceVersion = f.nextRV()
		b, _ := json.Marshal(api.WatchEvent[api.Instance]{Type: typ, Object: inst})
		lines = append(lines, b)
	}
	f.mu.Unlock()
	for _, l := range lines {
		w.Write(append(l, '\n'))
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

func (f *fakeAPI) createInstance(w http.ResponseWriter, r *http.Request) {
	var inst api.Instance
	if err := json.NewDecoder(r.Body).Decode(&inst); err != nil {
		writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "bad body: %v", err)})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	f.mu.Lock()
	f.attempts[key]++
	drop := f.dropFirstAttempt && f.attempts[key] == 1
	if name, ok := f.byKey[key]; ok && key != "" {
		prev, live := f.instances[name]
		f.mu.Unlock()
		if !live {
			// As the server answers a key whose instance was deleted since.
			writeJSON(w, 404, api.ErrorBody{Error: &api.Error{Code: api.CodeNotFound, Message: "object not found"}})
			return
		}
		writeJSON(w, 200, *prev)
		return
	}
	if f.refuseCreate[inst.Metadata.Name] {
		f.mu.Unlock()
		writeJSON(w, 500, api.ErrorBody{Error: &api.Error{Code: api.CodeInternal, Message: "internal error"}})
		return
	}
	if _, ok := f.instances[inst.Metadata.Name]; ok {
		f.mu.Unlock()
		writeJSON(w, 409, api.ErrorBody{Error: &api.Error{Code: api.CodeAlreadyExists, Field: "metadata.name",
			Message: "an object of this name already exists"}})
		return
	}
	inst.Kind = "Instance"
	inst.Metadata.Project = r.PathValue("p")
	inst.Metadata.UID = "uid-" + inst.Metadata.Name
	inst.Metadata.CreationTimestamp = time.Now()
	inst.Metadata.ResourceVersion = f.nextRV()
	inst.Status.Phase = api.PhasePending
	f.instances[inst.Metadata.Name] = &inst
	f.byKey[key] = inst.Metadata.Name
	f.mu.Unlock()
	if drop {
		// The instance was made but the answer is lost: the client must
		// retry with the same key and get this instance back.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	writeJSON(w, 201, inst)
}

func (f *fakeAPI) getInstance(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	inst, ok := f.instances[r.PathValue("name")]
	var cp api.Instance
	if ok {
		cp = *inst
	}
	f.mu.Unlock()
	if !ok {
		writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("instance", r.PathValue("name"))})
		return
	}
	writeJSON(w, 200, cp)
}

func (f *fakeAPI) deleteInstance(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.instances[r.PathValue("name")]
	if !ok {
		writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("instance", r.PathValue("name"))})
		return
	}
	inst.Status.Phase = api.PhaseTerminating
	inst.Metadata.ResourceVersion = f.nextRV()
	writeJSON(w, 202, inst)
}

func (f *fakeAPI) execInstance(w http.ResponseWriter, r *http.Request) {
	var req api.ExecRequest
	json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	f.execStdin, f.execCmd = req.Stdin, req.Command
	resp := f.exec
	f.mu.Unlock()
	writeJSON(w, 200, resp)
}

func (f *fakeAPI) listEvents(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	evs := append([]api.Event(nil), f.events...)
	watchEvs := append([]api.Event(nil), f.watchEvents...)
	f.mu.Unlock()
	if r.URL.Query().Get("watch") != "true" {
		writeJSON(w, 200, api.List[api.Event]{Kind: "EventList", Metadata: api.ListMeta{ResourceVersion: "500"}, Items: evs})
		return
	}
	w.WriteHeader(200)
	for _, ev := range watchEvs {
		b, _ := json.Marshal(api.WatchEvent[api.Event]{Type: api.Added, Object: ev})
		w.Write(append(b, '\n'))
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// useConfig points the CLI at the fake with a config file and clears the
// environment overrides.
func (f *fakeAPI) useConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := &clientconfig.Config{}
	cfg.Upsert(clientconfig.Context{Name: "test", Server: f.srv.URL, Token: "ctx-token", Project: "demo"}, true)
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	t.Setenv(clientconfig.EnvConfig, path)
	t.Setenv(EnvToken, "")
	t.Setenv(EnvServer, "")
	return path
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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
	var out, errb syncBuffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	code := Execute(ctx, root)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}
