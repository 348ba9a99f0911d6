package group

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// TestGroupTableFromView checks that the list's table view holds every
// field the group table prints.
func TestGroupTableFromView(t *testing.T) {
	whole := []*api.InstanceGroup{
		{Kind: "InstanceGroup", Metadata: api.ObjectMeta{Name: "web", Project: "p"},
			Spec: api.InstanceGroupSpec{Count: 3, Template: api.InstanceTemplate{Image: "img", Flavor: "tiny"}},
			Status: api.InstanceGroupStatus{ObservedGeneration: 2, Desired: 4, Members: 4, Running: 3, Healthy: 2, Updated: 1,
				Revision: 5, Rollout: "Paused", RolloutReason: "by user"}},
		{Kind: "InstanceGroup", Metadata: api.ObjectMeta{Name: "new", Project: "p"}, Spec: api.InstanceGroupSpec{Count: 2}},
	}
	view := api.InstanceGroupKind.ViewOf(api.ViewTable)
	viewed := make([]*api.InstanceGroup, len(whole))
	for i, g := range whole {
		raw, err := json.Marshal(view.Of(g))
		if err != nil {
			t.Fatal(err)
		}
		viewed[i] = new(api.InstanceGroup)
		if err := json.Unmarshal(raw, viewed[i]); err != nil {
			t.Fatal(err)
		}
	}
	var want, got bytes.Buffer
	if err := output.Render(&want, "table", nil, groupTable(whole)); err != nil {
		t.Fatal(err)
	}
	if err := output.Render(&got, "table", nil, groupTable(viewed)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("the table of the views is\n%s\nthe table of the groups\n%s", got.String(), want.String())
	}
}
