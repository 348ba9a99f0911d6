package apiserver_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
)

func TestDrainHost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{})
	s.Join(t, "h1", "https://127.0.0.1:1")
	s.Join(t, "h2", "https://127.0.0.1:2")
	for _, in := range []struct {
		name, host, group string
	}{
		{"web-0", "h1", "web"}, {"web-1", "h2", "web"}, {"pet", "h1", ""},
	} {
		obj := &api.Instance{Metadata: api.ObjectMeta{Name: in.name, Project: "default"},
			Spec:   api.InstanceSpec{Image: "default/img", Flavor: "small"},
			Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: in.host}}
		if in.group != "" {
			obj.Metadata.Labels = map[string]string{api.LabelGroup: in.group}
		}
		s.Create(t, obj)
	}
	member := s.Token(t, "alice", "default", api.RoleAdmin)
	if a := send(t, http.MethodPost, s.URL+"/v1/hosts/h1/drain", nil, map[string]string{"Authorization": "Bearer " + member}); a.status != http.StatusForbidden {
		t.Fatalf("project admin drains: %d %s, want 403", a.status, a.body)
	}
	a := send(t, http.MethodPost, s.URL+"/v1/hosts/h1/drain", nil, map[string]string{"Authorization": "Bearer " + s.Admin})
	if a.status != http.StatusOK {
		t.Fatalf("drain: %d %s", a.status, a.body)
	}
	var out api.DrainResponse
	json.Unmarshal(a.body, &out)
	if out.Host != "h1" || !slices.Equal(out.Deleted, []string{"default/web-0"}) || !slices.Equal(out.Kept, []string{"default/pet"}) {
		t.Fatalf("drain answered %+v", out)
	}
	if h := s.Get(t, api.HostKind, "", "h1").(*api.Host); !h.Spec.Unschedulable {
		t.Fatal("the drained host is not cordoned")
	}
	if in := s.Get(t, api.InstanceKind, "default", "web-0").(*api.Instance); in.Metadata.DeletionTimestamp == nil || in.Status.Phase != api.PhaseTerminating {
		t.Fatalf("drained member: deletion %v phase %s, want Terminating", in.Metadata.DeletionTimestamp, in.Status.Phase)
	}
	for _, name := range []string{"web-1", "pet"} {
		if in := s.Get(t, api.InstanceKind, "default", name).(*api.Instance); in.Metadata.DeletionTimestamp != nil {
			t.Errorf("%s was deleted", name)
		}
	}
	if a := send(t, http.MethodPost, s.URL+"/v1/hosts/nope/drain", nil, map[string]string{"Authorization": "Bearer " + s.Admin}); a.status != http.StatusNotFound {
		t.Fatalf("drain an unknown host: %d, want 404", a.status)
	}
}
