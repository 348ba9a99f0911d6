package instance

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// TestInstanceTableFromView checks that the list's table view holds every
// field the instance table prints: the table of the views is the table
// of the whole instances.
func TestInstanceTableFromView(t *testing.T) {
	created := time.Now().Add(-3 * time.Hour)
	whole := []*api.Instance{
		{Kind: "Instance", Metadata: api.ObjectMeta{Name: "web-0", Project: "p", CreationTimestamp: created, Labels: map[string]string{"a": "b"}},
			Spec: api.InstanceSpec{Image: "p/img", Flavor: "tiny", Env: []string{"A=1"}},
			Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h1", Reason: "CrashLoop",
				Interfaces: []api.Interface{{Network: "n", MAC: "0a:00:00:00:00:01", IP: "10.0.0.2"}, {Network: "m", IP: "10.1.0.2"}}}},
		{Kind: "Instance", Metadata: api.ObjectMeta{Name: "db", Project: "q", CreationTimestamp: created},
			Spec: api.InstanceSpec{Image: "q/pg", Flavor: "small"}, Status: api.InstanceStatus{Phase: api.PhasePending}},
	}
	view := api.InstanceKind.ViewOf(api.ViewTable)
	viewed := make([]*api.Instance, len(whole))
	for i, in := range whole {
		raw, err := json.Marshal(view.Of(in))
		if err != nil {
			t.Fatal(err)
		}
		viewed[i] = new(api.Instance)
		if err := json.Unmarshal(raw, viewed[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, allProjects := range []bool{false, true} {
		var want, got bytes.Buffer
		if err := output.Render(&want, "table", nil, instanceTable(whole, allProjects)); err != nil {
			t.Fatal(err)
		}
		if err := output.Render(&got, "table", nil, instanceTable(viewed, allProjects)); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("all projects %v: the table of the views is\n%s\nthe table of the instances\n%s", allProjects, got.String(), want.String())
		}
	}
}
