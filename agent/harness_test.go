package agent

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

const testHost = "host-1"

// harness runs agents against a fake API with a fake driver.
type harness struct {
	api *fakeAPI
	drv *fakeDriver
	dir string

	mu         sync.Mutex
	reconciled map[string]int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{api: newFakeAPI(t), drv: newFakeDriver("fake", t.TempDir()), dir: t.TempDir(), reconciled: map[string]int{}}
	h.api.addImage("demo", "busybox")
	return h
}

func (h *harness) config() Config {
	reg := driver.NewRegistry()
	reg.Register(h.drv)
	return Config{
		Server:            h.api.srv.URL,
		JoinToken:         h.api.joinToken,
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
		last = h.api.get(key)
		return last != nil && cond(last), fmt.Sprintf("last: %+v", last)
	})
	return last
}

// newInstance returns an instance placed on the test host as the
// scheduler leaves it.
func newInstance(name, uid string) *api.Instance {
	return &api.Instance{
		Metadata: api.ObjectMeta{Name: name, Project: "demo", UID: uid},
		Spec:     api.InstanceSpec{Image: "demo/busybox", Flavor: "small", Resources: api.Resources{VCPUs: 1, MemoryMiB: 64, DiskGiB: 1}},
		Status:   api.InstanceStatus{Phase: api.PhaseScheduled, Host: testHost, Driver: "fake"},
	}
}

func phaseIs(p api.InstancePhase) func(*api.Instance) bool {
	return func(i *api.Instance) bool { return i.Status.Phase == p }
}
