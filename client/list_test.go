package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestListQuery checks the query a list sends for its options, the view
// among them, and that a page's continue token is followed.
func TestListQuery(t *testing.T) {
	var got []url.Values
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/projects/p/instances", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		got = append(got, q)
		l := api.List[api.Instance]{Kind: "InstanceList", Items: []api.Instance{{Metadata: api.ObjectMeta{Name: "i" + q.Get("continue")}}}}
		if q.Get("continue") == "" {
			l.Metadata.Continue = "2"
		}
		json.NewEncoder(w).Encode(l)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New(Config{Server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	items, _, err := ListAll[api.Instance](context.Background(), c, api.InstanceKind, "p",
		ListOptions{LabelSelector: "a=b", View: api.ViewTable, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[1].Metadata.Name != "i2" {
		t.Errorf("items %+v", items)
	}
	want := []string{"labelSelector=a%3Db&limit=1&view=table", "continue=2&labelSelector=a%3Db&limit=1&view=table"}
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i, q := range got {
		if q.Encode() != want[i] {
			t.Errorf("request %d: query %s, want %s", i, q.Encode(), want[i])
		}
	}
}
