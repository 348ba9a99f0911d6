package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/watchtest"
)

// TestOverEtcd runs the main flows against a real embedded etcd.
func TestOverEtcd(t *testing.T) {
	e := newEtcdEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Bootstrap is idempotent over the real store.
	if again, err := e.srv.Bootstrap(ctx); err != nil || again != e.admin {
		t.Fatalf("second Bootstrap = %q, %v", again, err)
	}
	e.must(http.StatusOK, "GET", "/readyz", "", nil)

	ch, _ := e.watchStream("/v1/projects/default/instances?watch=true", e.admin)
	e.image("default", "img", true)
	body := api.Instance{Metadata: api.ObjectMeta{Name: "web"}, Spec: api.InstanceSpec{Image: "img", Flavor: "small"}}
	var first, retry api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "k").decode(t, &first)
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "k").decode(t, &retry)
	if first.Metadata.UID != retry.Metadata.UID || first.Spec.Resources.MemoryMiB != 512 {
		t.Errorf("idempotent create: %+v vs %+v", first.Metadata, retry.Metadata)
	}
	ev := watchtest.Next(t, ch)
	var got api.Instance
	json.Unmarshal(ev.Object, &got)
	if ev.Type != api.Added || got.Metadata.UID != first.Metadata.UID {
		t.Errorf("watch saw %s %s", ev.Type, ev.Object)
	}

	stale := first
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances/web/stop", e.admin, nil)
	if ev = watchtest.Next(t, ch); ev.Type != api.Modified {
		t.Errorf("watch saw %s, want MODIFIED", ev.Type)
	}
	e.must(http.StatusConflict, "PUT", "/v1/projects/default/instances/web", e.admin, stale)

	var list api.List[api.Instance]
	e.must(http.StatusOK, "GET", "/v1/instances", e.admin, nil).decode(t, &list)
	if len(list.Items) != 1 || list.Metadata.ResourceVersion == "" {
		t.Errorf("list %+v", list)
	}

	// Join, heartbeat and the host's view.
	var jt api.JoinToken
	e.must(http.StatusCreated, "POST", "/v1/jointokens", e.admin, api.JoinTokenRequest{}).decode(t, &jt)
	req, _ := joinRequest(t, "h1", "https://127.0.0.1:9443")
	var jr api.JoinResponse
	e.must(http.StatusOK, "POST", "/v1/hosts/join", jt.Status.Secret, req).decode(t, &jr)
	e.must(http.StatusOK, "POST", "/v1/hosts/h1/heartbeat", jr.Token, api.HeartbeatRequest{TTL: "10s"})
	alive, _, err := e.store.Presence().Alive(ctx)
	if err != nil || !alive["h1"] {
		t.Errorf("presence: %v %v", alive, err)
	}
	e.must(http.StatusOK, "GET", "/v1/instances?host=h1", jr.Token, nil).decode(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("host sees unplaced instances: %+v", list.Items)
	}

	e.must(http.StatusConflict, "DELETE", "/v1/projects/default/images/img", e.admin, nil)
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/web", e.admin, nil)
	if ev = watchtest.Next(t, ch); ev.Type != api.Deleted {
		t.Errorf("watch saw %s, want DELETED", ev.Type)
	}
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/images/img", e.admin, nil)
}

// TestIPAMOverEtcd creates instances concurrently on a small network:
// every one gets its own address, the network fills up exactly, and a
// retried create returns the first result.
func TestIPAMOverEtcd(t *testing.T) {
	e := newEtcdEnv(t)
	e.image("default", "img", false)
	// A /28 has 14 host addresses; the gateway takes one.
	e.must(http.StatusCreated, "POST", netsPath, e.admin, network("lab", "10.8.0.0/28"))
	// The server hands every instance its own address until the network
	// is full. That creates at the same time do too is the allocator's
	// to show: see TestAllocateConcurrently in package ipam.
	const n = 13
	ips := map[string]string{}
	for i := range n {
		r := e.instanceOn("default", fmt.Sprintf("i%d", i), api.NetworkAttachment{Network: "lab"})
		var in api.Instance
		if r.status != http.StatusCreated || json.Unmarshal(r.body, &in) != nil {
			t.Fatalf("instance %d: %d %s", i, r.status, r.body)
		}
		ip := in.Status.Interfaces[0].IP
		if other, ok := ips[ip]; ok {
			t.Errorf("%s handed to %s and %s", ip, other, in.Metadata.Name)
		}
		ips[ip] = in.Metadata.Name
	}
	if len(ips) != n {
		t.Fatalf("%d distinct addresses, want %d", len(ips), n)
	}
	if r := e.instanceOn("default", "full", api.NetworkAttachment{Network: "lab"}); r.status != http.StatusConflict {
		t.Fatalf("create on a full network: %d %s", r.status, r.body)
	}

	body := api.Instance{Metadata: api.ObjectMeta{Name: "retry"}, Spec: api.InstanceSpec{Image: "img", Flavor: "tiny"}}
	var first, again api.Instance
	e.must(http.StatusCreated, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "ipam").decode(t, &first)
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances", e.admin, body, "Idempotency-Key", "ipam").decode(t, &again)
	if first.Metadata.UID != again.Metadata.UID || !jsonEqual(first.Status.Interfaces, again.Status.Interfaces) {
		t.Fatalf("retried create: %+v vs %+v", first.Status.Interfaces, again.Status.Interfaces)
	}
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/instances/i3", e.admin, nil)
	var reuse api.Instance
	e.instanceOn("default", "reuse", api.NetworkAttachment{Network: "lab"}).decode(t, &reuse)
	if got, want := reuse.Status.Interfaces[0].IP, first.Status.Interfaces[0].IP; got == "" || ips[got] != "i3" {
		t.Fatalf("address after delete = %s (want the one i3 had); retry got %s", got, want)
	}
}
