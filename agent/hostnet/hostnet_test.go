package hostnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

func TestReadyWaitsForTaps(t *testing.T) {
	var ports Ports
	vm := &api.Instance{Metadata: api.ObjectMeta{UID: "u-vm"}, Status: api.InstanceStatus{Driver: api.DriverVM}}
	ct := &api.Instance{Metadata: api.ObjectMeta{UID: "u-ct"}, Status: api.InstanceStatus{Driver: api.DriverContainer}}
	veth := Port{NetNS: "/run/netns/ouro-iu", NICs: []driver.NIC{{MAC: "0a:58:0a:00:00:01"}}}
	tap := Port{NICs: []driver.NIC{{MAC: "0a:58:0a:00:00:02", RouterNetNS: "/run/netns/ouro-n1", Tap: "ourpuvm"}}}

	changed := ports.Set(map[string]Port{"u-vm": veth, "u-ct": veth}, nil)
	slices.Sort(changed)
	if !slices.Equal(changed, []string{"u-ct", "u-vm"}) {
		t.Errorf("first set: changed %v", changed)
	}
	if _, ok := ports.Ready(vm); ok {
		t.Error("a VM was ready on a veth port")
	}
	if _, ok := ports.Ready(ct); !ok {
		t.Error("a container was not ready on its veth port")
	}
	// The port becomes a TAP: the VM is reported changed (to be queued)
	// and is ready; the unchanged container is not reported.
	if changed := ports.Set(map[string]Port{"u-vm": tap, "u-ct": veth}, nil); !slices.Equal(changed, []string{"u-vm"}) {
		t.Errorf("second set: changed %v, want [u-vm]", changed)
	}
	if p, ok := ports.Ready(vm); !ok || p.NICs[0].Tap != "ourpuvm" {
		t.Errorf("VM with its TAP applied: %+v ready %v", p, ok)
	}
}

// fakePlane records what it applies; err fails Apply.
type fakePlane struct {
	mu      sync.Mutex
	applied []api.HostNetworkSpec
	err     error
}

func (p *fakePlane) Apply(_ context.Context, spec api.HostNetworkSpec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied = append(p.applied, spec)
	return p.err
}

func (p *fakePlane) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *fakePlane) NetNSPath(uid string) string  { return "/run/netns/ouro-i" + uid }
func (p *fakePlane) RouterNSPath(vni int) string  { return fmt.Sprintf("/run/netns/ouro-n%d", vni) }
func (p *fakePlane) PortDevice(uid string) string { return "ourp" + uid }

// fakeAPI serves one HostNetwork: GET, a watch that stays open, and
// status writes.
type fakeAPI struct {
	mu     sync.Mutex
	hn     api.HostNetwork
	cl     *client.Client
	writes int // status updates
}

func (f *fakeAPI) Client() *client.Client { return f.cl }

func (f *fakeAPI) status() api.HostNetworkStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hn.Status
}

func newFakeAPI(t *testing.T, hn api.HostNetwork) *fakeAPI {
	t.Helper()
	f := &fakeAPI{hn: hn}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hostnetworks/host-1", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(f.hn)
	})
	mux.HandleFunc("PUT /v1/hostnetworks/host-1/status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var in api.HostNetwork
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.hn.Status = in.Status
		f.writes++
		json.NewEncoder(w).Encode(f.hn)
	})
	mux.HandleFunc("GET /v1/hostnetworks", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cl, err := client.New(client.Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	f.cl = cl
	return f
}

// recorder is the Metadata and the Queue of a loop under test.
type recorder struct {
	mu      sync.Mutex
	synced  int
	closed  bool
	changed []string
}

func (r *recorder) Sync(api.HostNetworkSpec) { r.mu.Lock(); r.synced++; r.mu.Unlock() }
func (r *recorder) Close()                   { r.mu.Lock(); r.closed = true; r.mu.Unlock() }
func (r *recorder) PortsChanged(uids []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = append(r.changed, uids...)
}

func TestLoopAppliesAndReports(t *testing.T) {
	hn := api.HostNetwork{
		Metadata: api.ObjectMeta{Name: "host-1", UID: "hn-1", Generation: 1, ResourceVersion: "7"},
		Spec: api.HostNetworkSpec{Networks: []api.HostNetworkEntry{{
			UID: "net-1", VNI: 4096, CIDR: "10.0.0.0/24", Gateway: "10.0.0.1",
			Ports: []api.HostPort{
				{Instance: "ct", MAC: "0a:58:0a:00:00:05", IP: "10.0.0.5"},
				{Instance: "vm", MAC: "0a:58:0a:00:00:06", IP: "10.0.0.6", Driver: api.DriverVM},
			},
		}}},
	}
	fapi := newFakeAPI(t, hn)
	plane := &fakePlane{err: errors.New("nft: no such table")}
	rec := &recorder{}
	var ports Ports
	l := New(Config{Plane: plane, Host: "host-1", API: fapi, Ports: &ports, Metadata: rec, Queue: rec,
		RetryDelay: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// A failed apply is reported, and retried.
	wait.For(t, 10*time.Second, "the failure reported", func() bool { return fapi.status().Message != "" })
	if st := fapi.status(); st.Applied || !strings.Contains(st.Message, "no such table") || st.ObservedGeneration != 1 {
		t.Errorf("status after a failed apply = %+v", st)
	}
	if _, ok := ports.Get("ct"); ok {
		t.Error("ports recorded after a failed apply")
	}
	plane.setErr(nil)
	wait.For(t, 10*time.Second, "the retry applied", func() bool { return fapi.status().Applied })

	ct, ok := ports.Ready(&api.Instance{Metadata: api.ObjectMeta{UID: "ct"}})
	if !ok || ct.NetNS != "/run/netns/ouro-ict" || !slices.Equal(ct.Nameservers, []string{"10.0.0.1"}) ||
		len(ct.NICs) != 1 || ct.NICs[0].PrefixLen != 24 || ct.NICs[0].Tap != "" {
		t.Errorf("container port = %+v, %v", ct, ok)
	}
	vm, ok := ports.Ready(&api.Instance{Metadata: api.ObjectMeta{UID: "vm"}, Status: api.InstanceStatus{Driver: api.DriverVM}})
	if !ok || vm.NetNS != "" || vm.NICs[0].Tap != "ourpvm" || vm.NICs[0].RouterNetNS != "/run/netns/ouro-n4096" {
		t.Errorf("VM port = %+v, %v", vm, ok)
	}
	if ns, ip, ok := ports.ProbeTarget(&api.Instance{Metadata: api.ObjectMeta{UID: "ct"},
		Status: api.InstanceStatus{Interfaces: []api.Interface{{IP: "10.0.0.5"}}}}); !ok || ns != "/run/netns/ouro-n4096" || ip != "10.0.0.5" {
		t.Errorf("ProbeTarget = %q %q %v", ns, ip, ok)
	}
	rec.mu.Lock()
	changed := slices.Sorted(slices.Values(rec.changed))
	synced := rec.synced
	rec.mu.Unlock()
	if !slices.Equal(changed, []string{"ct", "vm"}) || synced < 2 {
		t.Errorf("queued %v, metadata synced %d times; want ct and vm, at least 2", changed, synced)
	}

	cancel()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !rec.closed {
		t.Error("the metadata service was not closed when the loop ended")
	}
}
