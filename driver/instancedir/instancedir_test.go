package instancedir

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/driver"
)

var testID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestCreateListRemove(t *testing.T) {
	root := filepath.Join(t.TempDir(), "instances")
	r := New(root, testID)
	if ids, err := r.List(); err != nil || len(ids) != 0 {
		t.Fatalf("List of a missing root = %v, %v", ids, err)
	}
	for _, id := range []string{"b", "a"} {
		dir, err := r.Create(id, "upper", "bundle")
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "upper")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("subdirectory: %v, %v", fi, err)
		}
	}
	if _, err := r.Create("a"); err != nil {
		t.Errorf("creating again: %v", err)
	}
	// Not instances: files, hidden names, names the pattern refuses.
	for _, p := range []string{".removed-c/x", "Upper/x"} {
		if err := os.MkdirAll(filepath.Join(root, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ids, err := r.List(); err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("List = %v, %v; want [a b]", ids, err)
	}
	if err := r.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("a"); err != nil {
		t.Errorf("removing a missing directory: %v", err)
	}
	if r.Exists("a") || !r.Exists("b") {
		t.Errorf("exists a=%v b=%v, want false true", r.Exists("a"), r.Exists("b"))
	}
}

// TestCrashedRemoval plants what a crash mid-removal leaves and checks
// who removes it.
func TestCrashedRemoval(t *testing.T) {
	tests := []struct {
		name    string
		recover func(r *Root) error
		want    []string
	}{
		{"removing the id again", func(r *Root) error { return r.Remove("a") }, []string{".removed-b", "c"}},
		{"removing the id, recreated since", func(r *Root) error { return r.Remove("c") }, []string{".removed-a", ".removed-b"}},
		{"clean", func(r *Root) error { return r.Clean() }, []string{"c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			r := New(root, testID)
			for _, p := range []string{".removed-a/disk", ".removed-b/x/y", "c/spec.json"} {
				if err := os.MkdirAll(filepath.Join(root, p), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "removing the id, recreated since" {
				if err := os.MkdirAll(filepath.Join(root, ".removed-c"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.recover(r); err != nil {
				t.Fatal(err)
			}
			if got := names(t, root); !slices.Equal(got, tc.want) {
				t.Errorf("left %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSpec(t *testing.T) {
	r := New(t.TempDir(), testID)
	if _, err := r.ReadSpec("a"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadSpec of a missing spec = %v, want ErrNotExist", err)
	}
	if _, err := r.Create("a"); err != nil {
		t.Fatal(err)
	}
	want := driver.Spec{ID: "a", Command: []string{"sleep", "1"}}
	if err := r.WriteSpec(want); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadSpec("a")
	if err != nil || got.ID != want.ID || !slices.Equal(got.Command, want.Command) {
		t.Errorf("ReadSpec = %+v, %v; want %+v", got, err, want)
	}
	if err := os.WriteFile(r.SpecPath("a"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadSpec("a"); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadSpec of a torn spec = %v, want a parse error", err)
	}
}
