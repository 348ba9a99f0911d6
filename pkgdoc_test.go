// Package ouro_test holds the tests that look at the module as a whole
// rather than at one package.
package ouro_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestPackageDocs fails naming every package of the module that has no
// package doc comment. A package made only of tests (such as test/e2e)
// counts too: its doc comment may sit on any of its files.
func TestPackageDocs(t *testing.T) {
	var missing []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if path != "." {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		documented, isPackage, err := hasPackageDoc(path)
		if err != nil {
			return err
		}
		if isPackage && !documented {
			missing = append(missing, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk the module: %v", err)
	}
	sort.Strings(missing)
	for _, dir := range missing {
		t.Errorf("package %s has no package doc comment", dir)
	}
}

// hasPackageDoc reports whether dir holds a Go package and whether any of
// the package's files carries a doc comment. Test files count only when
// the directory has nothing else, and then only those of the package
// itself (not those of an external _test package) unless there are none.
func hasPackageDoc(dir string) (documented, isPackage bool, err error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, false, err
	}
	var src, tests []string
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			tests = append(tests, p)
		} else {
			src = append(src, p)
		}
	}
	if len(src) == 0 {
		src = tests
	}
	if len(src) == 0 {
		return false, false, nil
	}
	fset := token.NewFileSet()
	var own, external bool
	for _, p := range src {
		f, err := parser.ParseFile(fset, p, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return false, false, err
		}
		if f.Doc == nil {
			continue
		}
		if strings.HasSuffix(f.Name.Name, "_test") {
			external = true
		} else {
			own = true
		}
	}
	return own || external, true, nil
}
