package metadata

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

var (
	web = &Instance{
		ID: "6f1c2d3e-0000-4000-8000-000000000001", Name: "web", InstanceType: "small",
		LocalIPv4: "10.0.0.5", MAC: "0a:58:0a:00:00:05", PublicIPv4: "192.0.2.10",
		KeyName: "laptop", PublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 me@laptop"},
		UserData: "#cloud-config\nhostname: web\n", Zone: "zone-a",
	}
	db = &Instance{ID: "6f1c2d3e-0000-4000-8000-000000000002", Name: "db", LocalIPv4: "10.0.0.6", Zone: "default"}
)

// fakeLookup knows web at 10.0.0.5 and db at 10.0.0.6.
var fakeLookup = LookupFunc(func(a netip.Addr) (*Instance, bool) {
	switch a.String() {
	case web.LocalIPv4:
		return web, true
	case db.LocalIPv4:
		return db, true
	}
	return nil, false
})

type result struct {
	code   int
	body   string
	header http.Header
}

func call(t *testing.T, h http.Handler, method, path, from string, headers ...string) result {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = from + ":41234"
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return result{w.Code, w.Body.String(), w.Header()}
}

func TestPaths(t *testing.T) {
	h := NewHandler(fakeLookup)
	for _, tt := range []struct {
		from, path string
		code       int
		body       string
	}{
		{"10.0.0.5", "/", 200, "1.0\n2009-04-04\nlatest"},
		{"10.0.0.5", "/latest", 200, "meta-data\nuser-data"},
		{"10.0.0.5", "/latest/", 200, "meta-data\nuser-data"},
		{"10.0.0.6", "/latest/", 200, "meta-data"},
		{"10.0.0.5", "/latest/meta-data/", 200,
			"hostname\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nplacement/\npublic-ipv4\npublic-keys/"},
		{"10.0.0.5", "/latest/meta-data", 200,
			"hostname\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nplacement/\npublic-ipv4\npublic-keys/"},
		{"10.0.0.6", "/latest/meta-data/", 200, "hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nplacement/"},
		{"10.0.0.5", "/latest/meta-data/instance-id", 200, web.ID},
		{"10.0.0.5", "/2009-04-04/meta-data/instance-id", 200, web.ID},
		{"10.0.0.5", "/2021-03-23/meta-data/instance-id", 200, web.ID},
		{"10.0.0.5", "/latest/meta-data/hostname", 200, "web"},
		{"10.0.0.5", "/latest/meta-data/local-hostname", 200, "web"},
		{"10.0.0.5", "/latest/meta-data/instance-type", 200, "small"},
		{"10.0.0.5", "/latest/meta-data/local-ipv4", 200, "10.0.0.5"},
		{"10.0.0.5", "/latest/meta-data/mac", 200, "0a:58:0a:00:00:05"},
		{"10.0.0.5", "/latest/meta-data/public-ipv4", 200, "192.0.2.10"},
		{"10.0.0.5", "/latest/meta-data/placement/", 200, "availability-zone"},
		{"10.0.0.5", "/latest/meta-data/placement", 200, "availability-zone"},
		{"10.0.0.5", "/latest/meta-data/placement/availability-zone", 200, "zone-a"},
		{"10.0.0.5", "/latest/meta-data/public-keys/", 200, "0=laptop"},
		{"10.0.0.5", "/latest/meta-data/public-keys/0/", 200, "openssh-key"},
		{"10.0.0.5", "/latest/meta-data/public-keys/0/openssh-key", 200, web.PublicKeys[0]},
		{"10.0.0.5", "/latest/user-data", 200, web.UserData},
		// The other instance gets its own values, never web's.
		{"10.0.0.6", "/latest/meta-data/instance-id", 200, db.ID},
		{"10.0.0.6", "/latest/meta-data/placement/availability-zone", 200, "default"},
		// Without a floating IP, keys or user-data: 404.
		{"10.0.0.6", "/latest/meta-data/public-ipv4", 404, ""},
		{"10.0.0.6", "/latest/meta-data/public-keys/", 404, ""},
		{"10.0.0.6", "/latest/meta-data/public-keys/0/openssh-key", 404, ""},
		{"10.0.0.6", "/latest/user-data", 404, ""},
		// Unknown things.
		{"10.0.0.5", "/latest/meta-data/ami-id", 404, ""},
		{"10.0.0.5", "/latest/meta-data/instance-id/", 404, ""},
		{"10.0.0.5", "/latest/meta-data/public-keys/1/openssh-key", 404, ""},
		{"10.0.0.5", "/v2/meta-data/instance-id", 404, ""},
		{"10.0.0.5", "/latest/dynamic/instance-identity/document", 404, ""},
		// Strangers get nothing at all.
		{"10.0.0.7", "/latest/meta-data/instance-id", 403, ""},
		{"10.0.0.7", "/", 403, ""},
	} {
		got := call(t, h, "GET", tt.path, tt.from)
		if got.code != tt.code || (tt.code == 200 && got.body != tt.body) {
			t.Errorf("GET %s from %s = %d %q, want %d %q", tt.path, tt.from, got.code, got.body, tt.code, tt.body)
		}
	}
}

func TestMethods(t *testing.T) {
	h := NewHandler(fakeLookup)
	if got := call(t, h, "POST", "/latest/meta-data/instance-id", "10.0.0.5"); got.code != 405 || got.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST = %d Allow %q, want 405 GET, HEAD", got.code, got.header.Get("Allow"))
	}
	if got := call(t, h, "HEAD", "/latest/meta-data/instance-id", "10.0.0.5"); got.code != 200 || got.header.Get("Content-Length") != strconv.Itoa(len(web.ID)) {
		t.Errorf("HEAD = %d length %q", got.code, got.header.Get("Content-Length"))
	}
	if got := call(t, h, "GET", "/latest/api/token", "10.0.0.5"); got.code != 405 {
		t.Errorf("GET token = %d, want 405", got.code)
	}
}

func TestTokens(t *testing.T) {
	h := NewHandler(fakeLookup)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }

	for _, tt := range []struct {
		name    string
		headers []string
		code    int
	}{
		{"no ttl", nil, 400},
		{"ttl 0", []string{TokenTTLHeader, "0"}, 400},
		{"ttl too long", []string{TokenTTLHeader, "21601"}, 400},
		{"ttl not a number", []string{TokenTTLHeader, "1h"}, 400},
		{"through a proxy", []string{TokenTTLHeader, "60", "X-Forwarded-For", "10.0.0.9"}, 403},
	} {
		if got := call(t, h, "PUT", "/latest/api/token", "10.0.0.5", tt.headers...); got.code != tt.code {
			t.Errorf("%s: PUT token = %d %q, want %d", tt.name, got.code, got.body, tt.code)
		}
	}

	got := call(t, h, "PUT", "/latest/api/token", "10.0.0.5", TokenTTLHeader, "60")
	if got.code != 200 || got.body == "" || got.header.Get(TokenTTLHeader) != "60" {
		t.Fatalf("PUT token = %d %q ttl %q", got.code, got.body, got.header.Get(TokenTTLHeader))
	}
	tok := got.body
	// Honoured by its instance...
	if got := call(t, h, "GET", "/latest/meta-data/instance-id", "10.0.0.5", TokenHeader, tok); got.code != 200 || got.body != web.ID {
		t.Errorf("GET with token = %d %q", got.code, got.body)
	}
	// ...but not by another one, nor when tampered with, nor expired.
	if got := call(t, h, "GET", "/latest/meta-data/instance-id", "10.0.0.6", TokenHeader, tok); got.code != 401 {
		t.Errorf("token of web used by db = %d, want 401", got.code)
	}
	bad := []byte(tok)
	if bad[len(bad)/2] == 'A' {
		bad[len(bad)/2] = 'B'
	} else {
		bad[len(bad)/2] = 'A'
	}
	if got := call(t, h, "GET", "/latest/user-data", "10.0.0.5", TokenHeader, string(bad)); got.code != 401 {
		t.Errorf("tampered token = %d, want 401", got.code)
	}
	if got := call(t, h, "GET", "/latest/user-data", "10.0.0.5", TokenHeader, "not-a-token"); got.code != 401 {
		t.Errorf("garbage token = %d, want 401", got.code)
	}
	now = now.Add(61 * time.Second)
	if got := call(t, h, "GET", "/latest/user-data", "10.0.0.5", TokenHeader, tok); got.code != 401 {
		t.Errorf("expired token = %d, want 401", got.code)
	}
	// A token of another handler (another agent run) is refused too.
	other := NewHandler(fakeLookup)
	other.now = h.now
	tok2 := call(t, other, "PUT", "/latest/api/token", "10.0.0.5", TokenTTLHeader, "60").body
	if got := call(t, h, "GET", "/latest/user-data", "10.0.0.5", TokenHeader, tok2); got.code != 401 {
		t.Errorf("token of another handler = %d, want 401", got.code)
	}
	// Without a token (IMDSv1) the data is still served.
	if got := call(t, h, "GET", "/latest/user-data", "10.0.0.5"); got.code != 200 || got.body != web.UserData {
		t.Errorf("GET without token = %d %q", got.code, got.body)
	}
}

func TestMultipleKeys(t *testing.T) {
	inst := &Instance{ID: "x", Name: "x", LocalIPv4: "10.0.0.8", PublicKeys: []string{"ssh-ed25519 A a", "ssh-ed25519 B b"}}
	h := NewHandler(LookupFunc(func(netip.Addr) (*Instance, bool) { return inst, true }))
	if got := call(t, h, "GET", "/latest/meta-data/public-keys", "10.0.0.8"); got.body != "0=key-0\n1=key-1" {
		t.Errorf("keys listing without a key name = %q", got.body)
	}
	if got := call(t, h, "GET", "/latest/meta-data/public-keys/1/openssh-key", "10.0.0.8"); got.body != "ssh-ed25519 B b" {
		t.Errorf("second key = %q", got.body)
	}
}
