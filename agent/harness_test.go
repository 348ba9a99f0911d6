package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/controller/lifecycle"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

const testHost = "host-1"

// harness runs agents against the real API server, over an embedded
// etcd, with a fake driver. The server's project demo holds image
// busybox; a recorder in front of the server keeps what the agents sent
// and fails chosen routes.
type harness struct {
	api       *apitest.Server
	rec       apitest.Recorder
	joinToken string
	drv       *fakeDriver
	dir       string

	mu         sync.Mutex
	reconciled map[string]int
	// beforeServe, when set, sees each request before the server does.
	beforeServe func(*http.Request)
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{drv: newFakeDriver("fake", t.TempDir()), dir: t.TempDir(), reconciled: map[string]int{}}
	h.api = apitest.Start(t, apitest.Config{Wrap: func(next http.Handler) http.Handler {
		return h.rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			before := h.beforeServe
			h.mu.Unlock()
			if before != nil {
				before(r)
			}
			next.ServeHTTP(w, r)
		}))
	}})
	h.api.Project(t, "demo")
	h.addImage(t, "busybox")
	h.joinToken = h.api.JoinToken(t)
	h.finalizeInstances(t)
	h.rec.Reset()
	return h
}

func (h *harness) config() Config {
	reg := driver.NewRegistry()
	reg.Register(h.drv)
	return Config{
		Server:            h.api.URL,
		JoinToken:         h.joinToken,
		DataDir:           h.dir,
		Name:              testHost,
		AdvertiseAddress:  "127.0.0.1",
		Listen:            "127.0.0.1:0",
		Drivers:           reg,
		HeartbeatInterval: 20 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// testBackoff is the restart back-off of test agents: 20, 40, 80, 160 ms,
// reset after a 400 ms run.
var testBackoff = backoffPolicy{base: 20 * time.Millisecond, max: 160 * time.Millisecond, reset: 400 * time.Millisecond}

// start runs an agent with cfg until the test ends (or stop is called).
// edits change the agent before it runs.
func (h *harness) start(t *testing.T, cfg Config, edits ...func(*Agent)) (stop func()) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.queue.WithBackoff(10*time.Millisecond, 100*time.Millisecond)
	a.exitCheckInterval = 10 * time.Millisecond
	a.relistDelay = 10 * time.Millisecond
	a.rejoinInterval = 0
	a.stopTimeout = time.Second
	a.backoff = testBackoff
	a.healthTick = 10 * time.Millisecond
	for _, e := range edits {
		e(a)
	}
	a.afterReconcile = func(key string, _ error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.reconciled[key]++
	}
	return wait.Go(t, 10*time.Second, "Run", a.Run)
}

func (h *harness) reconciles(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reconciled[key]
}

// finalizeInstances plays the instance lifecycle controller until the
// test ends: it removes a deleted instance once its agent reports it
// Terminated.
func (h *harness) finalizeInstances(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	changes, err := h.api.Store.Watch(ctx, api.InstanceKind, "", 0)
	if err != nil {
		cancel()
		t.Fatalf("watch instances: %v", err)
	}
	stopped := make(chan struct{})
	t.Cleanup(func() { cancel(); <-stopped })
	ready := &api.Host{Status: api.HostStatus{Phase: api.HostReady}}
	go func() {
		defer close(stopped)
		for ch := range changes {
			inst, ok := ch.Object.(*api.Instance)
			if ok && ch.Type != api.Deleted {
				if act, _ := lifecycle.Decide(inst, ready); act == lifecycle.Delete {
					m := inst.Metadata
					h.api.Store.Delete(ctx, api.InstanceKind, m.Project, m.Name, m.ResourceVersion)
				}
			}
		}
	}()
}

// addImage stores a ready image of project demo.
func (h *harness) addImage(t *testing.T, name string) {
	t.Helper()
	h.api.Create(t, &api.Image{Metadata: api.ObjectMeta{Name: name, Project: "demo"},
		Spec: api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1}},
			Config: api.ImageConfig{Cmd: []string{"/bin/sh"}}},
		Status: api.ImageStatus{Phase: "Ready", Driver: "fake"},
	})
}

// place stores an instance as the scheduler leaves it and returns its
// key and the UID the store gave it.
func (h *harness) place(t *testing.T, inst *api.Instance) (key, uid string) {
	t.Helper()
	h.api.Create(t, inst)
	return instanceKey(inst), inst.Metadata.UID
}

// get returns the stored instance of key, or nil.
func (h *harness) get(t *testing.T, key string) *api.Instance {
	t.Helper()
	project, name, _ := strings.Cut(key, "/")
	if obj := h.api.Get(t, api.InstanceKind, project, name); obj != nil {
		return obj.(*api.Instance)
	}
	return nil
}

// edit changes the stored instance of key as another component would
// (generation kept).
func (h *harness) edit(t *testing.T, key string, fn func(*api.Instance)) {
	t.Helper()
	project, name, _ := strings.Cut(key, "/")
	h.api.Update(t, api.InstanceKind, project, name, func(o api.Object) { fn(o.(*api.Instance)) })
}

// updateSpec changes an instance as a user would (generation+1).
func (h *harness) updateSpec(t *testing.T, key string, fn func(*api.Instance)) {
	t.Helper()
	h.edit(t, key, func(i *api.Instance) {
		fn(i)
		i.Metadata.Generation++
	})
}

// remove deletes the instance of key, as the control plane does.
func (h *harness) remove(t *testing.T, key string) {
	t.Helper()
	project, name, _ := strings.Cut(key, "/")
	h.api.Remove(t, api.InstanceKind, project, name)
}

// eventReasons returns the reasons of the events about an instance of
// project demo, oldest first.
func (h *harness) eventReasons(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, e := range h.api.Events(t, "demo", name) {
		out = append(out, e.Reason)
	}
	return out
}

// host returns the stored test host, or an empty one.
func (h *harness) host(t *testing.T) api.Host {
	t.Helper()
	if obj := h.api.Get(t, api.HostKind, "", testHost); obj != nil {
		return *obj.(*api.Host)
	}
	return api.Host{}
}

// requests counts the requests the agents sent that match.
func (h *harness) requests(match func(apitest.Request) bool) int {
	n := 0
	for _, r := range h.rec.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// joins, beats and lists count the agents' joins (those answered, with
// new credentials), heartbeats (those answered with the host
// authenticated: injected failures too) and lists of instances.
func (h *harness) joins() int {
	return h.requests(func(r apitest.Request) bool {
		return r.Method == http.MethodPost && r.Path == "/v1/hosts/join" && r.Status == http.StatusOK
	})
}

func (h *harness) beats() int {
	return h.requests(func(r apitest.Request) bool {
		return r.Path == "/v1/hosts/"+testHost+"/heartbeat" && r.Status != 0 && r.Status != http.StatusUnauthorized
	})
}

func (h *harness) lists() int {
	return h.requests(func(r apitest.Request) bool {
		return r.Method == http.MethodGet && r.Path == "/v1/instances" && !strings.Contains(r.Query, "watch=true")
	})
}

// writes counts the status writes of instances accepted or still on
// their way (answered 0 so far): a write the store already shows is
// counted even before its answer is recorded.
func (h *harness) writes() int {
	return h.requests(func(r apitest.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.Path, "/instances/") &&
			strings.HasSuffix(r.Path, "/status") && (r.Status == http.StatusOK || r.Status == 0)
	})
}

// joinRequests returns what the agents asked when they joined.
func (h *harness) joinRequests(t *testing.T) []api.JoinRequest {
	t.Helper()
	var out []api.JoinRequest
	for _, r := range h.rec.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/hosts/join" {
			var req api.JoinRequest
			if err := json.Unmarshal([]byte(r.Body), &req); err != nil {
				t.Fatalf("join request %q: %v", r.Body, err)
			}
			out = append(out, req)
		}
	}
	return out
}

// failBeats makes heartbeats fail (or work again).
func (h *harness) failBeats(fail bool) {
	h.failRoute("POST /v1/hosts/"+testHost+"/heartbeat", fail, http.StatusServiceUnavailable, "heartbeat broken (injected)")
}

// failLists makes lists (and watches) of instances fail (or work again).
func (h *harness) failLists(fail bool) {
	h.failRoute("GET /v1/instances", fail, http.StatusInternalServerError, "list broken (injected)")
}

func (h *harness) failRoute(route string, fail bool, status int, msg string) {
	var e *api.Error
	if fail {
		e = &api.Error{Status: status, Code: api.CodeInternal, Message: msg}
	}
	h.rec.Fail(route, e)
}

// revokeHostTokens makes the server refuse the test host's tokens.
func (h *harness) revokeHostTokens(t *testing.T) {
	t.Helper()
	objs, _, err := h.api.Store.List(context.Background(), api.TokenKind, "", store.ListOptions{})
	if err != nil {
		t.Fatalf("list tokens: %v", err)
	}
	for _, o := range objs {
		if tok := o.(*api.Token); tok.Spec.Host == testHost {
			h.api.Remove(t, api.TokenKind, "", tok.Metadata.Name)
		}
	}
}

// waitFor waits up to ten seconds for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.For(t, 10*time.Second, what, cond)
}

// waitInstance waits until the instance of key satisfies cond and returns it.
func (h *harness) waitInstance(t *testing.T, key, what string, cond func(*api.Instance) bool) *api.Instance {
	t.Helper()
	var last *api.Instance
	wait.ForDetail(t, 10*time.Second, key+" "+what, func() (bool, string) {
		last = h.get(t, key)
		return last != nil && cond(last), fmt.Sprintf("last: %+v", last)
	})
	return last
}

// newInstance returns an instance of project demo placed on the test
// host as the scheduler leaves it.
func newInstance(name string) *api.Instance {
	return &api.Instance{
		Metadata: api.ObjectMeta{Name: name, Project: "demo"},
		Spec:     api.InstanceSpec{Image: "demo/busybox", Flavor: "small", Resources: api.Resources{VCPUs: 1, MemoryMiB: 64, DiskGiB: 1}},
		Status:   api.InstanceStatus{Phase: api.PhaseScheduled, Host: testHost, Driver: "fake"},
	}
}

func phaseIs(p api.InstancePhase) func(*api.Instance) bool {
	return func(i *api.Instance) bool { return i.Status.Phase == p }
}
