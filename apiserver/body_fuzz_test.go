package apiserver

import (
	"net/http"
	"testing"
)

// FuzzCreateBodies sends any body to the create routes of a few kinds as
// a cluster admin: the server never fails inside (5xx), and a refused body
// changes nothing in the store.
func FuzzCreateBodies(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny"}}`,
		`{"metadata":{"name":"x"},"spec":{"image":"busybox","flavor":"tiny","flavor":"large"}}`,
		`{"metadata":{"name":"x","labels":{"a":"b"}},"spec":{"networks":[{"network":"default","securityGroups":["default"]}]}}`,
		`{"metadata":{"name":"n"},"spec":{"cidr":"10.9.0.0/24"}}`,
		`{"metadata":{"name":"k"},"spec":{"publicKey":"ssh-ed25519 AAAA"}}`,
		`{"command":["cat"],"stdin":"aGk="}`, `[]`, `null`, `{"metadata":{"name":"\u0000"}}`,
	} {
		for route := range 4 {
			f.Add(uint8(route), []byte(s))
		}
	}
	e := newEnv(f)
	e.image("default", "busybox", false)
	routes := []string{
		"/v1/projects/default/instances", "/v1/projects/default/networks",
		"/v1/projects/default/keypairs", "/v1/projects/default/securitygroups",
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := routes[int(route)%len(routes)]
		e := *e // the same server, reporting to this run's t
		e.t = t
		before := e.fake.revision()
		r := e.do("POST", path, e.admin, body)
		if r.status >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, r.status, r.body)
		}
		if r.status >= 400 {
			if after := e.fake.revision(); after != before {
				t.Fatalf("POST %s %q refused (%d) but the store changed", path, body, r.status)
			}
			if e := r.apiError(); e.Code == "" || e.Message == "" {
				t.Fatalf("POST %s %q: %d without an API error: %s", path, body, r.status, r.body)
			}
			return
		}
		if r.status != http.StatusCreated && r.status != http.StatusOK {
			t.Fatalf("POST %s %q: %d %s", path, body, r.status, r.body)
		}
	})
}
