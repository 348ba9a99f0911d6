package admin

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// TestHostTableFromView checks that the list's table view holds every
// field the host table prints.
func TestHostTableFromView(t *testing.T) {
	whole := []*api.Host{
		{Kind: "Host", Metadata: api.ObjectMeta{Name: "h1", CreationTimestamp: time.Now().Add(-time.Hour), Labels: map[string]string{api.LabelHollow: "true", "rack": "a"}},
			Spec: api.HostSpec{Unschedulable: true, Taints: []string{api.TaintHollow}},
			Status: api.HostStatus{Phase: "Ready", Address: "192.0.2.1", AgentEndpoint: "https://192.0.2.1:9443", Architecture: "amd64",
				Drivers: []string{"container", "vm"}, Capacity: api.Resources{VCPUs: 8, MemoryMiB: 1024}, Allocated: api.Resources{VCPUs: 2, MemoryMiB: 512}}},
		{Kind: "Host", Metadata: api.ObjectMeta{Name: "h2"}},
	}
	view := api.HostKind.ViewOf(api.ViewTable)
	viewed := make([]*api.Host, len(whole))
	for i, h := range whole {
		raw, err := json.Marshal(view.Of(h))
		if err != nil {
			t.Fatal(err)
		}
		viewed[i] = new(api.Host)
		if err := json.Unmarshal(raw, viewed[i]); err != nil {
			t.Fatal(err)
		}
	}
	var want, got bytes.Buffer
	if err := output.Render(&want, "table", nil, hostTable(whole)); err != nil {
		t.Fatal(err)
	}
	if err := output.Render(&got, "table", nil, hostTable(viewed)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("the table of the views is\n%s\nthe table of the hosts\n%s", got.String(), want.String())
	}
}
