package cli

import (
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

func TestUserPasswordFromStdin(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	r := runCLI(t, nil, "a long enough password\n", "user", "create", "alice", "--role", "demo=member", "--password-stdin")
	if r.code != 0 {
		t.Fatalf("user create: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "a long enough password") {
		t.Fatalf("user create shows the password:\n%s", r.stdout)
	}
	u := c.Get(t, api.UserKind, "", "alice").(*api.User)
	if u.Spec.Roles["demo"] != api.RoleMember || auth.CheckPassword("a long enough password", u.Status.PasswordHash) != nil {
		t.Fatalf("user %+v: want member of demo with the password from stdin", u.Spec)
	}

	// Refused before any request, naming the password.
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"short\n", []string{"user", "create", "bob", "--password-stdin"}, "--password-stdin: password: it has 5 characters; use at least 12"},
		{"", []string{"user", "passwd", "alice", "--password-stdin"}, "standard input is empty"},
		{"a long enough password\n", []string{"user", "passwd", "alice"}, "--password-stdin: is required"},
	} {
		c.rec.Reset()
		r := runCLI(t, nil, tc.stdin, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
		if reqs := c.requestsSeen(); len(reqs) != 0 {
			t.Errorf("%v sent %d requests", tc.args, len(reqs))
		}
	}
	if c.Get(t, api.UserKind, "", "bob") != nil {
		t.Fatal("user bob was made with a refused password")
	}

	// An admin sets another's password; a user their own (NAME defaults
	// to whoami).
	if r := runCLI(t, nil, "another good password\r\n", "user", "passwd", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("admin sets alice's password: exit %d: %s", r.code, r.stderr)
	}
	u = c.Get(t, api.UserKind, "", "alice").(*api.User)
	if auth.CheckPassword("another good password", u.Status.PasswordHash) != nil {
		t.Fatal("the password was not changed (or kept its carriage return)")
	}
	alice := c.Token(t, "alice", "demo", api.RoleMember)
	r = runCLI(t, nil, "alice's own password\n", "--token", alice, "user", "passwd", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "Password of user alice set.") {
		t.Fatalf("alice sets her own: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, "alice's own password\n", "--token", alice, "user", "passwd", "admin", "--password-stdin")
	if r.code == 0 || !strings.Contains(r.stderr, "only cluster admins") {
		t.Fatalf("alice sets the admin's: exit %d %s", r.code, r.stderr)
	}
	r = runCLI(t, nil, "", "user", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "PASSWORD") {
		t.Fatalf("user list: exit %d %s", r.code, r.stdout)
	}
}

func TestHostCordonAndDrain(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	c.Join(t, "h1", "https://127.0.0.1:1")
	if r := runCLI(t, nil, "", "host", "cordon", "h1"); r.code != 0 || !strings.Contains(r.stdout, "Unschedulable") {
		t.Fatalf("cordon: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "", "host", "uncordon", "h1"); r.code != 0 || strings.Contains(r.stdout, "Unschedulable") {
		t.Fatalf("uncordon: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r := runCLI(t, nil, "", "host", "drain", "h1")
	if r.code != 0 || !strings.Contains(r.stdout, "Host h1 cordoned; 0 group member(s)") {
		t.Fatalf("drain: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if h := c.Get(t, api.HostKind, "", "h1").(*api.Host); !h.Spec.Unschedulable {
		t.Fatal("drain did not cordon")
	}
}

func TestInstanceCrash(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	seedInstances(t, c)
	c.serveAgent(t, api.ExecResponse{}, nil)
	if r := runCLI(t, nil, "", "instance", "crash", "web-1"); r.code != 0 || r.stdout != "instance/web-1: main process killed\n" {
		t.Fatalf("crash: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	member := c.Token(t, "alice", "demo", api.RoleAdmin)
	if r := runCLI(t, nil, "", "--token", member, "instance", "crash", "web-1"); r.code == 0 || !strings.Contains(r.stderr, "may not crash") {
		t.Fatalf("project admin crashes: exit %d %s", r.code, r.stderr)
	}
}
