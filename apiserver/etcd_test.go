package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/store"
)

func freeLoopbackURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// TestOverEtcd runs the main flows against a real embedded etcd.
func TestOverEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	etcd, err := etcdembed.Start(ctx, etcdembed.Config{
		DataDir:   t.TempDir(),
		ClientURL: freeLoopbackURL(t),
		PeerURL:   freeLoopbackURL(t),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { etcd.Close() })
	e := newEnvWith(t, store.NewEtcd(etcd.Client()), Config{})

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
	ev := next(t, ch)
	var got api.Instance
	json.Unmarshal(ev.Object, &got)
	if ev.Type != api.Added || got.Metadata.UID != first.Metadata.UID {
		t.Errorf("watch saw %s %s", ev.Type, ev.Object)
	}

	stale := first
	e.must(http.StatusOK, "POST", "/v1/projects/default/instances/web/stop", e.admin, nil)
	if ev = next(t, ch); ev.Type != api.Modified {
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
	if ev = next(t, ch); ev.Type != api.Deleted {
		t.Errorf("watch saw %s, want DELETED", ev.Type)
	}
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/images/img", e.admin, nil)
}
