package endpoint

import (
	"context"
	"net/http"
	"testing"

	"github.com/ouroboros-cloud/ouro/driver"
)

// killerDriver is a stubDriver whose instances can be killed.
type killerDriver struct{ *stubDriver }

var _ driver.Killer = killerDriver{}

func (d killerDriver) Kill(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running[id] {
		return driver.ErrNotRunning
	}
	d.running[id] = false
	return nil
}

func TestEndpointCrash(t *testing.T) {
	d := killerDriver{newStubDriver(t)}
	e := serve(t, d, "uid-web")
	post := func(uid string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/v1/instances/"+uid+"/crash", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("uid-web"); got != http.StatusNoContent {
		t.Fatalf("crash a running instance: %d, want 204", got)
	}
	if st, _ := d.Inspect(t.Context(), "uid-web"); st.State != driver.StateStopped {
		t.Fatalf("after the crash the instance is %s", st.State)
	}
	for _, tc := range []struct {
		uid  string
		want int
	}{
		{"uid-web", http.StatusConflict}, // not running any more
		{"uid-none", http.StatusNotFound},
	} {
		if got := post(tc.uid); got != tc.want {
			t.Errorf("crash %s: %d, want %d", tc.uid, got, tc.want)
		}
	}

	plain := serve(t, newStubDriver(t), "uid-web")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, plain.url+"/v1/instances/uid-web/crash", nil)
	resp, err := plain.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("crash with a driver that cannot: %d, want 400", resp.StatusCode)
	}
}
