package catalog

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/cli/output"
)

// TestImageTableFromView checks that the list's table view holds every
// field the image table prints.
func TestImageTableFromView(t *testing.T) {
	whole := []*api.Image{
		{Kind: "Image", Metadata: api.ObjectMeta{Name: "alpine", Project: "p"},
			Spec: api.ImageSpec{Public: true, Format: api.FormatOCI, Architecture: "amd64", Source: "docker.io/library/alpine",
				Layers: []api.Blob{{Digest: "sha256:00", Size: 3}}, Description: "d"},
			Status: api.ImageStatus{Phase: "Ready", Driver: "container", Size: 3 << 20}},
		{Kind: "Image", Metadata: api.ObjectMeta{Name: "empty", Project: "p"}},
	}
	view := api.ImageKind.ViewOf(api.ViewTable)
	viewed := make([]*api.Image, len(whole))
	for i, im := range whole {
		raw, err := json.Marshal(view.Of(im))
		if err != nil {
			t.Fatal(err)
		}
		viewed[i] = new(api.Image)
		if err := json.Unmarshal(raw, viewed[i]); err != nil {
			t.Fatal(err)
		}
	}
	var want, got bytes.Buffer
	if err := output.Render(&want, "table", nil, imageTable(whole)); err != nil {
		t.Fatal(err)
	}
	if err := output.Render(&got, "table", nil, imageTable(viewed)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("the table of the views is\n%s\nthe table of the images\n%s", got.String(), want.String())
	}
}
