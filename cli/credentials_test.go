package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestCredentials(t *testing.T) {
	c := newCloud(t)
	c.useConfig(t)
	alice := c.Token(t, "alice", "default", api.RoleMember)
	r := runCLI(t, nil, "", "--token", alice, "credentials", "create", "--project", "default", "--description", "ci")
	if r.code != 0 {
		t.Fatalf("credentials create: exit %d: %s", r.code, r.stderr)
	}
	id := regexp.MustCompile(`aws_access_key_id\s+= (AKIA[A-Z2-7]{16})\n`).FindStringSubmatch(r.stdout)
	secret := regexp.MustCompile(`aws_secret_access_key = (\S{40})\n`).FindStringSubmatch(r.stdout)
	if id == nil || secret == nil {
		t.Fatalf("credentials create printed:\n%s", r.stdout)
	}
	r = runCLI(t, nil, "", "--token", alice, "credentials", "list")
	if r.code != 0 || !strings.Contains(r.stdout, id[1]) || !strings.Contains(r.stdout, "ci") || strings.Contains(r.stdout, secret[1]) {
		t.Fatalf("credentials list: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "", "--token", alice, "credentials", "create", "--project", "other"); r.code == 0 {
		t.Fatalf("a key for a project without a role: %s", r.stdout)
	}
	r = runCLI(t, nil, "", "--token", alice, "credentials", "delete", id[1])
	if r.code != 0 || !strings.Contains(r.stdout, "deleted") {
		t.Fatalf("credentials delete: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if c.Get(t, api.AccessKeyKind, "", strings.ToLower(id[1])) != nil {
		t.Fatal("the key is still stored")
	}
}
