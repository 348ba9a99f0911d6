package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// This file holds what the adversarial tests share: tenants with tokens of
// each role, raw HTTP as a given token, and the check that a refusal is
// exact and tells the attacker nothing.

// tenant is a project and a token for each role in it.
type tenant struct {
	project               string
	admin, member, viewer string
}

// newTenant creates a project and issues an admin, a member and a viewer
// token in it, each for a user of its own.
func (c *cloud) newTenant(project string) tenant {
	c.t.Helper()
	c.ouro("project", "create", project)
	return tenant{
		project: project,
		admin:   c.issueToken(project, "admin", project+"-boss"),
		member:  c.issueToken(project, "member", project+"-dev"),
		viewer:  c.issueToken(project, "viewer", project+"-auditor"),
	}
}

// issueToken grants user role in project through the CLI and returns the
// token's secret.
func (c *cloud) issueToken(project, role, user string) string {
	c.t.Helper()
	var tok api.Token
	out := c.ouro("token", "create", "--project", project, "--role", role, "--user", user, "-o", "json")
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Status.Secret == "" {
		c.t.Fatalf("token create for %s: %v in %q", user, err, out)
	}
	return tok.Status.Secret
}

// as runs the CLI with token instead of the admin's and returns stdout,
// stderr and the error.
func (c *cloud) as(token string, args ...string) (string, string, error) {
	return c.run([]string{"OURO_TOKEN=" + token}, args...)
}

// mustAs is as that fails the test when the command fails.
func (c *cloud) mustAs(token string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.as(token, args...)
	if err != nil {
		c.t.Fatalf("ouro %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// httpClient returns a client for raw requests to the API: it trusts the
// cluster CA and dials in the cloud's namespace.
func (c *cloud) httpClient() *http.Client {
	if c.netns != "" {
		return &http.Client{Transport: c.netnsTransport(), Timeout: time.Minute}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 32}
	c.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// reply is the answer to a raw request.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// apiError decodes the error body, or returns nil if it is none.
func (r reply) apiError() *api.Error {
	var eb api.ErrorBody
	if json.Unmarshal(r.body, &eb) != nil {
		return nil
	}
	return eb.Error
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.status, tail(string(r.body), 600))
}

// request is one raw API request.
type request struct {
	method, path string
	// ctype is the Content-Type; "" sends application/json when there is
	// a body, "-" sends none.
	ctype  string
	body   []byte
	header map[string]string
	// chunked sends the body without a Content-Length.
	chunked bool
}

// do sends req with token and returns the whole answer.
func do(t testing.TB, hc *http.Client, base, token string, req request) reply {
	t.Helper()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
		if req.chunked {
			body = struct{ io.Reader }{body}
		}
	}
	hr, err := http.NewRequest(req.method, base+req.path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	switch {
	case req.ctype == "-":
	case req.ctype != "":
		hr.Header.Set("Content-Type", req.ctype)
	case req.body != nil:
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.method, req.path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: raw}
}

// refusal is the answer a probe must get.
type refusal struct {
	status int
	code   string
	// field, when set, must be the error's field.
	field string
}

var (
	notFound     = refusal{status: http.StatusNotFound, code: api.CodeNotFound}
	forbidden403 = refusal{status: http.StatusForbidden, code: api.CodeForbidden}
)

func invalid(field string) refusal {
	return refusal{status: http.StatusBadRequest, code: api.CodeInvalid, field: field}
}

// checkRefused fails t unless r is exactly the refusal want, with a
// proper error body that contains none of the secrets.
func checkRefused(t testing.TB, r reply, want refusal, secrets []string) {
	t.Helper()
	e := r.apiError()
	if r.status != want.status || e == nil || e.Code != want.code {
		t.Errorf("got %s; want %d %s", r, want.status, want.code)
	} else if want.field != "" && e.Field != want.field {
		t.Errorf("error names field %q, want %q: %s", e.Field, want.field, r)
	}
	checkNoLeak(t, r.body, secrets)
}

// checkNoLeak fails t if body contains any of the secrets.
func checkNoLeak(t testing.TB, body []byte, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && bytes.Contains(body, []byte(s)) {
			t.Errorf("the answer (%d bytes) leaks %q", len(body), s)
		}
	}
}

// watchLines opens a watch as token and returns the lines it sent within
// d, or the refusal when it did not answer 200.
func watchLines(t testing.TB, hc *http.Client, base, token, path string, d time.Duration) (reply, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(hr)
	if err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		return reply{status: resp.StatusCode, header: resp.Header, body: raw}, nil
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() { // ends when the deadline cuts the stream
		lines = append(lines, sc.Text())
	}
	return reply{status: resp.StatusCode, header: resp.Header}, lines
}

// snapshot is the JSON of objects as the cluster admin reads them, by API
// path, less what changes on its own (see comparable).
type snapshot map[string][]byte

// takeSnapshot reads every path as the cluster admin.
func (c *cloud) takeSnapshot(hc *http.Client, paths []string) snapshot {
	c.t.Helper()
	s := snapshot{}
	for _, p := range paths {
		r := do(c.t, hc, c.url, c.admin, request{method: http.MethodGet, path: p})
		if r.status != http.StatusOK {
			c.t.Fatalf("admin GET %s: %s", p, r)
		}
		s[p] = comparable(c.t, r.body)
	}
	return s
}

// comparable returns the object JSON raw without what changes on its own:
// the resourceVersion and the usage the agents sample.
func comparable(t testing.TB, raw []byte) []byte {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("not an object: %v: %s", err, raw)
	}
	if md, ok := o["metadata"].(map[string]any); ok {
		delete(md, "resourceVersion")
	}
	if st, ok := o["status"].(map[string]any); ok {
		delete(st, "usage")
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stableSnapshot waits until two snapshots in a row agree (controllers
// done with the objects) and returns it.
func (c *cloud) stableSnapshot(hc *http.Client, paths []string) snapshot {
	c.t.Helper()
	var s snapshot
	wait.ForDetail(c.t, 60*time.Second, "the victim's objects to settle", func() (bool, string) {
		prev := s
		s = c.takeSnapshot(hc, paths)
		if prev == nil {
			return false, "first read"
		}
		for p, b := range s {
			if !bytes.Equal(prev[p], b) {
				return false, p + " still changes"
			}
		}
		return true, ""
	})
	return s
}

// checkUnchanged fails t for every object that is gone or differs from
// the snapshot.
func (c *cloud) checkUnchanged(t testing.TB, hc *http.Client, before snapshot) {
	t.Helper()
	for p, b := range before {
		r := do(t, hc, c.url, c.admin, request{method: http.MethodGet, path: p})
		switch {
		case r.status != http.StatusOK:
			t.Errorf("%s is gone: %s", p, r)
		case !bytes.Equal(comparable(t, r.body), b):
			t.Errorf("%s changed:\nbefore %s\nafter  %s", p, b, r.body)
		}
	}
}
