package watchcache

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestWriteListMatchesWriteJSON checks that the parallel list encoding
// answers exactly what encoding the whole list at once would.
func TestWriteListMatchesWriteJSON(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"one", 1},
		{"sequential", parallelEncodeMin / 2},
		{"parallel", 3*parallelEncodeMin + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := func() []api.Object {
				out := make([]api.Object, tt.n)
				for i := range out {
					in := benchInstance(i)
					in.Metadata.Labels["html"] = "<&>"
					out[i] = in
				}
				return out
			}
			meta := api.ListMeta{ResourceVersion: "42", Continue: "next"}
			c := New(context.Background(), Config{Prepare: prepare})
			got := httptest.NewRecorder()
			if err := c.WriteList(got, api.InstanceKind, meta, objs(), nil); err != nil {
				t.Fatal(err)
			}
			items := make([]api.Object, 0, tt.n)
			for _, o := range objs() {
				items = append(items, prepare(o))
			}
			want := httptest.NewRecorder()
			json.NewEncoder(want).Encode(api.List[api.Object]{Kind: "InstanceList", Metadata: meta, Items: items})
			if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Fatalf("WriteList wrote\n%.300s\nwant\n%.300s", got.Body.Bytes(), want.Body.Bytes())
			}
			if got.Code != 200 || got.Header().Get("Content-Type") != "application/json" {
				t.Errorf("status %d, content type %q", got.Code, got.Header().Get("Content-Type"))
			}
		})
	}
}
