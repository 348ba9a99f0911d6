package apiserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestListViews checks lists with ?view= over the store's paginated path
// (the fake store) and the list cache (etcd): a view holds the same
// objects as the list without it, each as the view shows it, under the
// same access rules; bad views are refused.
func TestListViews(t *testing.T) {
	envs := []struct {
		name string
		new  func(*testing.T) *env
	}{
		{"paginated store", func(t *testing.T) *env { return newEnv(t) }},
		{"list cache", newEtcdEnv},
	}
	for _, te := range envs {
		t.Run(te.name, func(t *testing.T) {
			e := te.new(t)
			e.project("a")
			e.project("b")
			e.image("a", "img", false)
			e.image("b", "img", false)
			e.instance(e.admin, "b", "secret", "img")
			e.instance(e.admin, "a", "mine", "img")
			e.instance(e.admin, "a", "other-host", "img")
			e.place("a", "mine", "h1", api.PhaseRunning)
			e.place("a", "other-host", "h2", api.PhaseRunning)
			e.place("b", "secret", "h1", api.PhaseRunning)
			viewer := e.userToken("vic", map[string]api.Role{"a": api.RoleViewer})
			host := e.hostToken("h1")

			// viewed lists path with and without view as token and checks
			// that the view's items are the views of the whole ones.
			viewed := func(t *testing.T, token, path, view string) []string {
				t.Helper()
				var whole, got api.List[json.RawMessage]
				sep := "?"
				if strings.Contains(path, "?") {
					sep = "&"
				}
				e.must(http.StatusOK, "GET", path, token, nil).decode(t, &whole)
				e.must(http.StatusOK, "GET", path+sep+"view="+view, token, nil).decode(t, &got)
				if got.Kind != whole.Kind || got.Metadata.ResourceVersion == "" {
					t.Errorf("%s with view %s: kind %q, resourceVersion %q", path, view, got.Kind, got.Metadata.ResourceVersion)
				}
				if len(got.Items) != len(whole.Items) {
					t.Fatalf("%s with view %s: %d items, without %d", path, view, len(got.Items), len(whole.Items))
				}
				var names []string
				for i := range whole.Items {
					var in api.Instance
					if err := json.Unmarshal(whole.Items[i], &in); err != nil {
						t.Fatal(err)
					}
					want, err := json.Marshal(api.InstanceKind.ViewOf(view).Of(&in))
					if err != nil {
						t.Fatal(err)
					}
					if string(got.Items[i]) != string(want) {
						t.Errorf("%s item %d in view %s:\n got %s\nwant %s", path, i, view, got.Items[i], want)
					}
					names = append(names, in.Metadata.Project+"/"+in.Metadata.Name)
				}
				return names
			}
			for _, view := range []string{api.ViewTable, api.ViewMap} {
				if got := viewed(t, viewer, "/v1/instances", view); !sameStrings(got, "a/mine", "a/other-host") {
					t.Errorf("viewer of a, all projects, view %s: %v", view, got)
				}
				if got := viewed(t, host, "/v1/instances?host=h1", view); !sameStrings(got, "a/mine", "b/secret") {
					t.Errorf("host h1, view %s: %v", view, got)
				}
				if got := viewed(t, e.admin, "/v1/projects/a/instances?labelSelector=none%3Dthere", view); len(got) != 0 {
					t.Errorf("label-selected, view %s: %v", view, got)
				}
				// A project the caller has no role in stays unseen.
				e.must(http.StatusNotFound, "GET", "/v1/projects/b/instances?view="+view, viewer, nil)
				e.must(http.StatusForbidden, "GET", "/v1/instances?host=h2&view="+view, host, nil)
			}

			// Pages of a view are the view's list, cut.
			var names []string
			cont := ""
			for range 5 {
				var page api.List[api.Instance]
				e.must(http.StatusOK, "GET", "/v1/instances?view=table&limit=1&continue="+cont, e.admin, nil).decode(t, &page)
				for _, in := range page.Items {
					if in.Spec.Resources != (api.Resources{}) {
						t.Errorf("page item %s holds more than the table view", in.Metadata.Name)
					}
					names = append(names, in.Metadata.Project+"/"+in.Metadata.Name)
				}
				if cont = page.Metadata.Continue; cont == "" {
					break
				}
			}
			if !sameStrings(names, "a/mine", "a/other-host", "b/secret") {
				t.Errorf("pages of the table view: %v", names)
			}

			for _, tc := range []struct{ name, path string }{
				{"unknown view", "/v1/instances?view=everything"},
				{"kind without views", "/v1/flavors?view=table"},
				{"view on a watch", "/v1/instances?view=table&watch=true"},
			} {
				r := e.must(http.StatusBadRequest, "GET", tc.path, e.admin, nil)
				if ae := r.apiError(); ae.Field != "view" || ae.Hint == "" {
					t.Errorf("%s: %+v", tc.name, ae)
				}
			}
		})
	}
}

// sameStrings reports whether got holds exactly want, in order.
func sameStrings(got []string, want ...string) bool { return slices.Equal(got, want) }
