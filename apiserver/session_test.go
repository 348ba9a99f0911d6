package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

const goodPassword = "correct horse battery"

// web is a browser's view of the API: a session cookie and its CSRF token.
type web struct {
	t      *testing.T
	url    string
	cookie string
	csrf   string
}

// answer is an HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) errorCode() string {
	var b api.ErrorBody
	json.Unmarshal(a.body, &b)
	if b.Error == nil {
		return ""
	}
	return b.Error.Code
}

// send makes one request; header may set extra headers.
func send(t *testing.T, method, url string, body any, header map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// do sends a request with the session's cookie and, when withCSRF, its
// CSRF token.
func (w *web) do(method, path string, body any, withCSRF bool) answer {
	w.t.Helper()
	h := map[string]string{"Cookie": "ouro_session=" + w.cookie}
	if withCSRF {
		h["X-CSRF-Token"] = w.csrf
	}
	return send(w.t, method, w.url+path, body, h)
}

// signIn signs in with req and fails the test unless it succeeds.
func signIn(t *testing.T, s *apitest.Server, req api.SessionRequest) (*web, *http.Cookie, api.Session) {
	t.Helper()
	a := send(t, http.MethodPost, s.URL+"/v1/session", req, nil)
	if a.status != http.StatusOK {
		t.Fatalf("sign in as %q: %d %s", req.User, a.status, a.body)
	}
	var sess api.Session
	if err := json.Unmarshal(a.body, &sess); err != nil {
		t.Fatalf("decode session: %v", err)
	}
	cookies := (&http.Response{Header: a.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != "ouro_session" {
		t.Fatalf("sign-in cookies %v, want ouro_session", cookies)
	}
	return &web{t: t, url: s.URL, cookie: cookies[0].Value, csrf: sess.CSRFToken}, cookies[0], sess
}

// sessionServer is an API server with project default, the instance web
// in it, and users alice (member of default, password goodPassword)
// and vera (viewer of default, same password). It returns alice's token.
func sessionServer(t *testing.T) (*apitest.Server, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{})
	s.Create(t, &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Spec: api.InstanceSpec{Image: "default/img", Flavor: "small"}, Status: api.InstanceStatus{Phase: api.PhaseRunning}})
	alice := s.Token(t, "alice", "default", api.RoleMember)
	s.Token(t, "vera", "default", api.RoleViewer)
	admin := s.Client(t, s.Admin)
	for _, u := range []string{"alice", "vera"} {
		if err := admin.SetPassword(context.Background(), u, goodPassword); err != nil {
			t.Fatalf("set password of %s: %v", u, err)
		}
	}
	return s, alice
}

func TestSignInWithPassword(t *testing.T) {
	s, _ := sessionServer(t)
	w, c, sess := signIn(t, s, api.SessionRequest{User: "alice", Password: goodPassword})
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge != 12*3600 {
		t.Errorf("cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/, Max-Age=43200", c)
	}
	if sess.User != "alice" || len(sess.CSRFToken) < 40 || time.Until(sess.Expires) < 11*time.Hour || time.Until(sess.Expires) > 12*time.Hour {
		t.Errorf("session %+v", sess)
	}
	a := w.do(http.MethodGet, "/v1/session", nil, false)
	var got api.Session
	json.Unmarshal(a.body, &got)
	if a.status != http.StatusOK || got != sess {
		t.Fatalf("GET /v1/session: %d %s, want %+v", a.status, a.body, sess)
	}
	if a := w.do(http.MethodGet, "/v1/projects/default/instances/web", nil, false); a.status != http.StatusOK {
		t.Fatalf("GET with the cookie: %d %s", a.status, a.body)
	}
	a = w.do(http.MethodGet, "/v1/whoami", nil, false)
	if a.status != http.StatusOK || !strings.Contains(string(a.body), `"user":"alice"`) {
		t.Fatalf("whoami with the cookie: %d %s", a.status, a.body)
	}

	// etcd keeps the session under a lease, named by a hash of its id.
	ctx := context.Background()
	resp, err := s.Etcd.Get(ctx, "/ouro/v1/sessions/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%d session keys, want 1", len(resp.Kvs))
	}
	if kv := resp.Kvs[0]; kv.Lease == 0 || bytes.Contains(kv.Key, []byte(w.cookie)) || bytes.Contains(kv.Value, []byte(w.cookie)) {
		t.Fatalf("session key %s (lease %d) shows the session id or has no lease", kv.Key, kv.Lease)
	}

	if a := w.do(http.MethodDelete, "/v1/session", nil, false); a.status != http.StatusForbidden || a.errorCode() != api.CodeCSRFTokenInvalid {
		t.Fatalf("sign-out without the CSRF token: %d %s, want 403 CSRFTokenInvalid", a.status, a.body)
	}
	a = w.do(http.MethodDelete, "/v1/session", nil, true)
	if a.status != http.StatusNoContent {
		t.Fatalf("sign out: %d %s", a.status, a.body)
	}
	if cs := (&http.Response{Header: a.header}).Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("sign-out cookies %v, want ouro_session cleared", cs)
	}
	if a := w.do(http.MethodGet, "/v1/session", nil, false); a.status != http.StatusUnauthorized {
		t.Fatalf("GET /v1/session after sign-out: %d, want 401", a.status)
	}
	if a := w.do(http.MethodGet, "/v1/projects/default/instances", nil, false); a.status != http.StatusUnauthorized {
		t.Fatalf("list after sign-out: %d, want 401", a.status)
	}
	resp, err = s.Etcd.Get(ctx, "/ouro/v1/sessions/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d session keys after sign-out (%v), want 0", resp.Count, err)
	}
}

func TestSignInWithToken(t *testing.T) {
	s, alice := sessionServer(t)
	w, _, sess := signIn(t, s, api.SessionRequest{Token: alice})
	if sess.User != "alice" {
		t.Fatalf("session of %q, want alice", sess.User)
	}
	if a := w.do(http.MethodPost, "/v1/projects/default/instances/web/stop", nil, true); a.status != http.StatusOK {
		t.Fatalf("stop with a token's session: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		name string
		req  api.SessionRequest
	}{
		{"wrong token", api.SessionRequest{Token: "ouro_aaaaaaaaaaaa_" + strings.Repeat("a", 52)}},
		{"malformed", api.SessionRequest{Token: "nope"}},
		{"wrong password", api.SessionRequest{User: "alice", Password: "not the password"}},
		{"unknown user", api.SessionRequest{User: "nobody", Password: goodPassword}},
	} {
		if a := send(t, http.MethodPost, s.URL+"/v1/session", tc.req, nil); a.status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", tc.name, a.status, a.body)
		}
	}
	// Deleting the token ends the session.
	var list api.List[api.Token]
	s.Do(t, http.MethodGet, "/v1/tokens", nil, &list)
	for _, tok := range list.Items {
		if tok.Spec.User == "alice" {
			s.Do(t, http.MethodDelete, "/v1/tokens/"+tok.Metadata.Name, nil, nil)
		}
	}
	if a := w.do(http.MethodGet, "/v1/session", nil, false); a.status != http.StatusUnauthorized {
		t.Fatalf("session after its token was deleted: %d, want 401", a.status)
	}
}

func TestSessionCSRF(t *testing.T) {
	s, alice := sessionServer(t)
	w, _, _ := signIn(t, s, api.SessionRequest{User: "alice", Password: goodPassword})
	stop := "/v1/projects/default/instances/web/stop"
	for _, h := range []map[string]string{
		{"Cookie": "ouro_session=" + w.cookie},
		{"Cookie": "ouro_session=" + w.cookie, "X-CSRF-Token": "forged"},
		{"Cookie": "ouro_session=" + w.cookie, "X-CSRF-Token": w.csrf + "x"},
	} {
		a := send(t, http.MethodPost, s.URL+stop, nil, h)
		if a.status != http.StatusForbidden || a.errorCode() != api.CodeCSRFTokenInvalid {
			t.Errorf("forged stop with %v: %d %s, want 403 CSRFTokenInvalid", h, a.status, a.body)
		}
	}
	in := s.Get(t, api.InstanceKind, "default", "web").(*api.Instance)
	if in.Spec.PowerState == api.PowerOff {
		t.Fatal("a forged request stopped the instance")
	}
	if a := w.do(http.MethodPost, stop, nil, true); a.status != http.StatusOK {
		t.Fatalf("stop with the CSRF token: %d %s", a.status, a.body)
	}
	// Bearer tokens need no CSRF token.
	a := send(t, http.MethodPost, s.URL+"/v1/projects/default/instances/web/start", nil, map[string]string{"Authorization": "Bearer " + alice})
	if a.status != http.StatusOK {
		t.Fatalf("start with a bearer token: %d %s", a.status, a.body)
	}
}

func TestSessionActsWithTheUsersRoles(t *testing.T) {
	s, _ := sessionServer(t)
	s.Project(t, "other")
	s.Create(t, &api.Instance{Metadata: api.ObjectMeta{Name: "db", Project: "other"},
		Spec: api.InstanceSpec{Image: "other/img", Flavor: "small"}})
	v, _, _ := signIn(t, s, api.SessionRequest{User: "vera", Password: goodPassword})
	if a := v.do(http.MethodGet, "/v1/projects/default/instances", nil, false); a.status != http.StatusOK {
		t.Fatalf("viewer lists: %d %s", a.status, a.body)
	}
	if a := v.do(http.MethodPost, "/v1/projects/default/instances/web/stop", nil, true); a.status != http.StatusForbidden || a.errorCode() != api.CodeForbidden {
		t.Fatalf("viewer stops: %d %s, want 403 Forbidden", a.status, a.body)
	}
	w, _, _ := signIn(t, s, api.SessionRequest{User: "alice", Password: goodPassword})
	for _, p := range []string{"/v1/projects/other/instances/db", "/v1/projects/other/instances", "/v1/projects/other"} {
		if a := w.do(http.MethodGet, p, nil, false); a.status != http.StatusNotFound {
			t.Errorf("GET %s of another project: %d %s, want 404", p, a.status, a.body)
		}
	}
	if a := w.do(http.MethodDelete, "/v1/projects/other/instances/db", nil, true); a.status != http.StatusNotFound {
		t.Errorf("delete in another project: %d %s, want 404", a.status, a.body)
	}
	if a := w.do(http.MethodGet, "/v1/users", nil, false); a.status != http.StatusForbidden {
		t.Errorf("member lists users: %d, want 403", a.status)
	}
}

func TestSessionEndsWithPasswordChangeOrUserDelete(t *testing.T) {
	s, alice := sessionServer(t)
	w, _, _ := signIn(t, s, api.SessionRequest{User: "alice", Password: goodPassword})
	v, _, _ := signIn(t, s, api.SessionRequest{User: "vera", Password: goodPassword})

	// Alice changes her own password with her session.
	a := w.do(http.MethodPut, "/v1/users/alice/password", api.PasswordRequest{Password: "another good password"}, true)
	if a.status != http.StatusOK {
		t.Fatalf("change own password: %d %s", a.status, a.body)
	}
	if a := w.do(http.MethodGet, "/v1/session", nil, false); a.status != http.StatusUnauthorized {
		t.Fatalf("session after a password change: %d, want 401", a.status)
	}
	if a := send(t, http.MethodPost, s.URL+"/v1/session", api.SessionRequest{User: "alice", Password: goodPassword}, nil); a.status != http.StatusUnauthorized {
		t.Fatalf("sign in with the old password: %d, want 401", a.status)
	}
	signIn(t, s, api.SessionRequest{User: "alice", Password: "another good password"})

	// Members may not set others' passwords.
	bearer := map[string]string{"Authorization": "Bearer " + alice}
	a = send(t, http.MethodPut, s.URL+"/v1/users/vera/password", api.PasswordRequest{Password: goodPassword + "!"}, bearer)
	if a.status != http.StatusForbidden {
		t.Fatalf("member sets another's password: %d %s, want 403", a.status, a.body)
	}
	a = send(t, http.MethodPut, s.URL+"/v1/users/alice/password", api.PasswordRequest{Password: "short"}, bearer)
	var e api.ErrorBody
	json.Unmarshal(a.body, &e)
	if a.status != http.StatusBadRequest || e.Error == nil || e.Error.Field != "password" || !strings.Contains(e.Error.Hint, "12") {
		t.Fatalf("short password: %d %s, want 400 naming field password and 12 characters", a.status, a.body)
	}

	s.Do(t, http.MethodDelete, "/v1/users/vera", nil, nil)
	if a := v.do(http.MethodGet, "/v1/projects/default/instances", nil, false); a.status != http.StatusUnauthorized {
		t.Fatalf("session of a deleted user: %d, want 401", a.status)
	}
	// A new user of the same name is not the one who signed in.
	s.Token(t, "vera", "default", api.RoleViewer)
	if err := s.Client(t, s.Admin).SetPassword(context.Background(), "vera", goodPassword); err != nil {
		t.Fatal(err)
	}
	if a := v.do(http.MethodGet, "/v1/session", nil, false); a.status != http.StatusUnauthorized {
		t.Fatalf("session of a deleted and remade user: %d, want 401", a.status)
	}
}

func TestPasswordNeverAnswered(t *testing.T) {
	s, _ := sessionServer(t)
	h := map[string]string{"Authorization": "Bearer " + s.Admin}
	answers := []answer{
		send(t, http.MethodPut, s.URL+"/v1/users/alice/password", api.PasswordRequest{Password: goodPassword}, h),
		send(t, http.MethodGet, s.URL+"/v1/users/alice", nil, h),
		send(t, http.MethodGet, s.URL+"/v1/users", nil, h),
		send(t, http.MethodPost, s.URL+"/v1/session", api.SessionRequest{User: "alice", Password: goodPassword}, nil),
	}
	// A status write cannot set the hash.
	u := s.Get(t, api.UserKind, "", "alice").(*api.User)
	u.Status.PasswordHash = "$argon2id$forged"
	a := send(t, http.MethodPut, s.URL+"/v1/users/alice/status", u, h)
	if a.status != http.StatusBadRequest {
		t.Errorf("status write: %d %s, want 400", a.status, a.body)
	}
	answers = append(answers, a)
	// Nor a spec write.
	u = s.Get(t, api.UserKind, "", "alice").(*api.User)
	u.Status = api.UserStatus{PasswordHash: "$argon2id$forged"}
	answers = append(answers, send(t, http.MethodPut, s.URL+"/v1/users/alice", u, h))
	if got := s.Get(t, api.UserKind, "", "alice").(*api.User); !strings.HasPrefix(got.Status.PasswordHash, "$argon2id$v=19$m=") {
		t.Fatalf("stored hash %q: a write changed it", got.Status.PasswordHash)
	}
	for i, a := range answers {
		for _, secret := range []string{goodPassword, "argon2", "passwordHash"} {
			if bytes.Contains(a.body, []byte(secret)) {
				t.Errorf("answer %d (%d) shows %q: %s", i, a.status, secret, a.body)
			}
		}
	}
	var got api.User
	json.Unmarshal(answers[1].body, &got)
	if !got.Status.PasswordSet {
		t.Errorf("user %s: passwordSet is not shown", answers[1].body)
	}
}

func TestSignInLockOut(t *testing.T) {
	s, _ := sessionServer(t)
	wrong := api.SessionRequest{User: "alice", Password: "not the password"}
	for i := range 5 {
		if a := send(t, http.MethodPost, s.URL+"/v1/session", wrong, nil); a.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s, want 401", i+1, a.status, a.body)
		}
	}
	right := api.SessionRequest{User: "alice", Password: goodPassword}
	a := send(t, http.MethodPost, s.URL+"/v1/session", right, nil)
	if a.status != http.StatusTooManyRequests || a.errorCode() != api.CodeTooManyRequests {
		t.Fatalf("sign-in after 5 failures: %d %s, want 429", a.status, a.body)
	}
	if secs, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || secs < 1 || secs > 2 {
		t.Fatalf("Retry-After %q, want 1 s", a.header.Get("Retry-After"))
	}
	// The client address is locked out too, for every user.
	if a := send(t, http.MethodPost, s.URL+"/v1/session", api.SessionRequest{User: "vera", Password: goodPassword}, nil); a.status != http.StatusTooManyRequests {
		t.Fatalf("another user from the same address: %d, want 429", a.status)
	}
	wait.ForDetail(t, 10*time.Second, "sign-in after the lock-out", func() (bool, string) {
		a = send(t, http.MethodPost, s.URL+"/v1/session", right, nil)
		return a.status != http.StatusTooManyRequests, string(a.body)
	})
	if a.status != http.StatusOK {
		t.Fatalf("sign-in after the lock-out: %d %s", a.status, a.body)
	}
	// Success forgot the failures: one more failure is not locked out.
	if a := send(t, http.MethodPost, s.URL+"/v1/session", wrong, nil); a.status != http.StatusUnauthorized {
		t.Fatalf("failure after a success: %d %s, want 401", a.status, a.body)
	}
}

func TestCrashIsForClusterAdmins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{})
	crashed := make(chan string, 1)
	s.Agent(t, "h1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/crash") {
			crashed <- r.URL.Path
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.NotFound(w, r)
	}))
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
		Spec: api.InstanceSpec{Image: "default/img", Flavor: "small"}, Status: api.InstanceStatus{Phase: api.PhaseRunning, Host: "h1"}}
	s.Create(t, in)
	s.Project(t, "other")
	path := s.URL + "/v1/projects/default/instances/web/crash"
	for _, tc := range []struct {
		user, project string
		role          api.Role
		want          int
	}{
		{"pa", "default", api.RoleAdmin, http.StatusForbidden},
		{"pm", "default", api.RoleMember, http.StatusForbidden},
		{"oa", "other", api.RoleAdmin, http.StatusNotFound},
	} {
		tok := s.Token(t, tc.user, tc.project, tc.role)
		if a := send(t, http.MethodPost, path, nil, map[string]string{"Authorization": "Bearer " + tok}); a.status != tc.want {
			t.Errorf("%s %s of %s crashes: %d %s, want %d", tc.project, tc.role, tc.project, a.status, a.body, tc.want)
		}
	}
	select {
	case p := <-crashed:
		t.Fatalf("the agent was asked to crash %s for a non-admin", p)
	default:
	}
	if a := send(t, http.MethodPost, path, nil, map[string]string{"Authorization": "Bearer " + s.Admin}); a.status != http.StatusNoContent {
		t.Fatalf("admin crashes: %d %s", a.status, a.body)
	}
	if p := <-crashed; p != "/v1/instances/"+in.Metadata.UID+"/crash" {
		t.Fatalf("agent asked to crash %s", p)
	}
	wait.For(t, 10*time.Second, "a CrashRequested event", func() bool {
		for _, e := range s.Events(t, "default", "web") {
			if e.Reason == "CrashRequested" && strings.Contains(e.Message, "user:admin") {
				return true
			}
		}
		return false
	})
}

func TestConsoleServedOutsideTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	s := apitest.Start(t, apitest.Config{Console: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "console "+r.URL.Path)
	})})
	for path, want := range map[string]string{
		"/":             "console /",
		"/js/app.js":    "console /js/app.js",
		"/healthz":      "ok\n",
		"/v1/nothing":   `"code":"NotFound"`,
		"/v1":           `"code":"NotFound"`,
		"/v1/whoami":    `"code":"Unauthorized"`,
		"/metrics":      `"code":"Unauthorized"`,
		"/v1x/whatever": "console /v1x/whatever",
	} {
		a := send(t, http.MethodGet, s.URL+path, nil, nil)
		if !strings.Contains(string(a.body), want) {
			t.Errorf("GET %s: %d %q, want %q", path, a.status, a.body, want)
		}
	}
}
