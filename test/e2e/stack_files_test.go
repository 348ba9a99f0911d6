package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestStackBadFiles: a file with an unknown kind, a reference to nothing,
// a cycle, a bad CIDR or a duplicate name is refused whole, naming the
// file, the line and the field, and nothing is created, by plan or apply.
func TestStackBadFiles(t *testing.T) {
	c := newCloud(t)
	dir := t.TempDir()
	// Every file starts with a good network: it must not be created either.
	const good = `kind: Network
metadata:
  name: fine
spec:
  cidr: 10.64.0.0/24
`
	for _, tc := range []struct {
		name string
		body string
		// lines are the marks whose lines the error may name (the
		// document's or the field's); words must be in the error too.
		lines []string
		words []string
	}{
		{"unknown kind", good + `---
kind: Bucket
metadata:
  name: files
spec:
  size: 10
`, []string{"kind: Bucket", "name: files"}, []string{"kind", "Bucket"}},
		{"reference to nothing", good + `---
kind: Instance
metadata:
  name: lonely
spec:
  image: busybox
  flavor: tiny
  userData: peer=${Instance/ghost.status.interfaces[0].ip}
`, []string{"kind: Instance", "userData:"}, []string{"spec.userData", "ghost"}},
		{"cycle", good + `---
kind: Instance
metadata:
  name: chicken
spec:
  image: busybox
  flavor: tiny
  userData: egg=${Instance/egg.status.interfaces[0].ip}
---
kind: Instance
metadata:
  name: egg
spec:
  image: busybox
  flavor: tiny
  userData: chicken=${Instance/chicken.status.interfaces[0].ip}
`, []string{"kind: Instance", "name: chicken", "name: egg", "egg=", "chicken="}, []string{"cycle", "chicken", "egg"}},
		{"bad CIDR", good + `---
kind: Network
metadata:
  name: wide
spec:
  cidr: 10.0.0.0/33
`, []string{"cidr: 10.0.0.0/33", "name: wide"}, []string{"spec.cidr", "10.0.0.0/33"}},
		{"duplicate name", good + `---
kind: SecurityGroup
metadata:
  name: twice
---
kind: SecurityGroup
metadata:
  name: twice
`, []string{"kind: SecurityGroup", "name: twice"}, []string{"metadata.name", "twice"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			file := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.body)
			base := filepath.Base(file)
			var lines []int
			for _, m := range tc.lines {
				for i, line := range strings.Split(tc.body, "\n") {
					if strings.Contains(line, m) {
						lines = append(lines, i+1)
					}
				}
			}
			re := regexp.MustCompile(regexp.QuoteMeta(base) + `:(\d+)`)
			for _, cmd := range [][]string{{"stack", "plan", "bad"}, {"stack", "apply", "bad"}} {
				out, errOut, code := c.runCode(append(cmd, "-f", file)...)
				what := strings.Join(cmd[:2], " ")
				if code != 1 {
					t.Errorf("%s: exit code %d, want 1\nstdout: %s\nstderr: %s", what, code, out, errOut)
					continue
				}
				t.Logf("%s: %s", what, strings.TrimSpace(errOut))
				m := re.FindStringSubmatch(errOut)
				if m == nil {
					t.Errorf("%s: the error does not name %s:LINE:\n%s", what, base, errOut)
				} else if l, _ := strconv.Atoi(m[1]); !containsInt(lines, l) {
					t.Errorf("%s: the error names line %d, want one of %v:\n%s", what, l, lines, errOut)
				}
				for _, w := range tc.words {
					if !strings.Contains(errOut, w) {
						t.Errorf("%s: the error does not say %q:\n%s", what, w, errOut)
					}
				}
			}
			if _, err := c.stackGet("", "bad"); !api.IsNotFound(err) {
				t.Errorf("stack bad after a refused file: %v", err)
			}
			if objs := c.ownedByStack("default", "bad"); len(objs) > 0 {
				t.Errorf("objects of stack bad after a refused file: %v", keysOf(objs))
			}
			if _, err := c.listObjects(api.NetworkKind, "default", ""); err != nil {
				t.Fatal(err)
			}
			var n api.Network
			if err := c.clientAs(c.admin).Get(context.Background(), api.NetworkKind, "default", "fine", &n); !api.IsNotFound(err) {
				t.Errorf("network fine of a refused file: %v", err)
			}
		})
	}
}

// containsInt reports whether xs has x.
func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
