package network

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// TestNetworkTableFromView checks that the list's table view holds every
// field the network table prints.
func TestNetworkTableFromView(t *testing.T) {
	off := false
	whole := []*api.Network{
		{Kind: "Network", Metadata: api.ObjectMeta{Name: "a", Project: "p"}, Spec: api.NetworkSpec{CIDR: "10.0.0.0/24", DNS: []string{"1.1.1.1"}},
			Status: api.NetworkStatus{VNI: 7, Phase: "Ready"}},
		{Kind: "Network", Metadata: api.ObjectMeta{Name: "b", Project: "p"}, Spec: api.NetworkSpec{CIDR: "10.1.0.0/24", Gateway: "10.1.0.254", NAT: &off}},
	}
	view := api.NetworkKind.ViewOf(api.ViewTable)
	viewed := make([]*api.Network, len(whole))
	for i, n := range whole {
		raw, err := json.Marshal(view.Of(n))
		if err != nil {
			t.Fatal(err)
		}
		viewed[i] = new(api.Network)
		if err := json.Unmarshal(raw, viewed[i]); err != nil {
			t.Fatal(err)
		}
	}
	var want, got bytes.Buffer
	if err := output.Render(&want, "table", nil, networkTable(whole)); err != nil {
		t.Fatal(err)
	}
	if err := output.Render(&got, "table", nil, networkTable(viewed)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("the table of the views is\n%s\nthe table of the networks\n%s", got.String(), want.String())
	}
}
