package metadata

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzPaths sends any path and method to the metadata service as the
// instance web and checks that it never fails inside (5xx) and never
// answers with another instance's data.
func FuzzPaths(f *testing.F) {
	for _, p := range []string{
		"/latest/meta-data/", "/latest/user-data", "/latest/meta-data/public-keys/0/openssh-key",
		"/latest/meta-data/../../latest/user-data", "/2009-04-04/meta-data/instance-id",
		"/latest/meta-data/placement//availability-zone", "/latest/api/token", "/%2e%2e/",
	} {
		f.Add("GET", p)
	}
	f.Add("PUT", "/latest/api/token")
	h := NewHandler(fakeLookup)
	f.Fuzz(func(t *testing.T, method, path string) {
		if !requestLine(method, path) {
			return // not a request line net/http would hand the handler
		}
		r := call(t, h, method, path, web.LocalIPv4, TokenTTLHeader, "60")
		if r.code >= 500 {
			t.Fatalf("%s %s = %d %q", method, path, r.code, r.body)
		}
		for _, other := range []string{db.ID, db.LocalIPv4, db.Name + "\n"} {
			if strings.Contains(r.body, other) {
				t.Fatalf("%s %s as web answered db's %q: %q", method, path, other, r.body)
			}
		}
		if r.code == http.StatusOK && method != http.MethodGet && method != http.MethodHead && method != http.MethodPut {
			t.Fatalf("%s %s = 200", method, path)
		}
	})
}

// requestLine reports whether method and path form a request line that
// net/http would parse and hand to a handler.
func requestLine(method, path string) bool {
	if method == "" || strings.IndexFunc(method, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return false
	}
	if !strings.HasPrefix(path, "/") || strings.IndexFunc(path, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '#' || r == '?' }) >= 0 {
		return false
	}
	_, err := url.ParseRequestURI(path)
	return err == nil
}
