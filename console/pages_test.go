package console

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

// sideEffectImport finds `import './x.js';` lines: how pages/index.js
// loads the page modules.
var sideEffectImport = regexp.MustCompile(`(?m)^\s*import\s+['"]\./([^'"]+)['"]`)

// TestEveryPageModuleIsImported checks that pages/index.js imports every
// module of js/pages (a module it misses would register no routes), that
// fixed routes load before the patterns that would shadow them, and that
// it imports nothing that is not there.
func TestEveryPageModuleIsImported(t *testing.T) {
	files := embedded(t)
	index, err := fs.ReadFile(files, "js/pages/index.js")
	if err != nil {
		t.Fatal(err)
	}
	imported := map[string]int{}
	for i, m := range sideEffectImport.FindAllStringSubmatch(string(index), -1) {
		imported[m[1]] = i
	}
	mods, err := fs.Glob(files, "js/pages/*.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range mods {
		name := path.Base(p)
		if name == "index.js" {
			continue
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "register(") {
			continue // shared code (ui.js, sha256.js), imported by the pages
		}
		if _, ok := imported[name]; !ok {
			t.Errorf("js/pages/index.js does not import %s, so its routes are never registered", name)
		}
	}
	for name := range imported {
		if _, err := fs.Stat(files, "js/pages/"+name); err != nil {
			t.Errorf("js/pages/index.js imports %s, which is missing", name)
		}
	}
	// The router takes the first route that matches: instances/new must
	// be registered before instances/:name.
	if c, ok := imported["instance-create.js"]; ok && c > imported["instances.js"] {
		t.Error("js/pages/index.js imports instances.js before instance-create.js: #/instances/new would open an instance named new")
	}
}

// unsafeJS lists what no console script may do: build markup from strings
// (data from the API would become markup: XSS) or run strings as code
// (which the CSP refuses anyway).
var unsafeJS = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`\.(?:inner|outer)HTML\s*\+?=\s*[^'"\s]`), "assigns computed markup to innerHTML/outerHTML"},
	{regexp.MustCompile(`\.(?:inner|outer)HTML\s*\+?=\s*(?:'[^']+'|"[^"]+")`), "assigns markup to innerHTML/outerHTML"},
	{regexp.MustCompile(`\binsertAdjacentHTML\s*\(`), "calls insertAdjacentHTML"},
	{regexp.MustCompile(`\bdocument\.write(?:ln)?\s*\(`), "calls document.write"},
	{regexp.MustCompile(`(?:^|[^.\w])eval\s*\(`), "calls eval"},
	{regexp.MustCompile(`\bnew\s+Function\s*\(`), "makes a Function from a string"},
	{regexp.MustCompile(`\bset(?:Timeout|Interval)\s*\(\s*['"` + "`" + `]`), "passes a string of code to a timer"},
	{regexp.MustCompile(`setAttribute\(\s*['"]style['"]`), "sets an inline style attribute, which the CSP refuses"},
	{regexp.MustCompile(`createContextualFragment\s*\(`), "parses markup from a string"},
}

// TestNoMarkupFromStrings checks every script of the console (not the
// vendored libraries) against unsafeJS.
func TestNoMarkupFromStrings(t *testing.T) {
	files := embedded(t)
	n := 0
	err := fs.WalkDir(files, "js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		n++
		for i, line := range strings.Split(string(body), "\n") {
			if s := strings.TrimSpace(line); strings.HasPrefix(s, "//") || strings.HasPrefix(s, "*") {
				continue
			}
			for _, u := range unsafeJS {
				if u.re.MatchString(line) {
					t.Errorf("%s:%d %s: %s", p, i+1, u.what, strings.TrimSpace(line))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no scripts found under js/")
	}
}

// TestUnsafePatternsMatch keeps the patterns of unsafeJS honest: each bad
// line is caught, each good one passes.
func TestUnsafePatternsMatch(t *testing.T) {
	tests := []struct {
		line string
		bad  bool
	}{
		{"el.innerHTML = `<b>${name}</b>`;", true},
		{"el.innerHTML = name;", true},
		{"el.innerHTML += '<i>x</i>';", true},
		{"el.outerHTML = html", true},
		{"el.innerHTML = '';", false},
		{"el.insertAdjacentHTML('beforeend', s)", true},
		{"eval(code)", true},
		{"const f = new Function('a', body)", true},
		{"setTimeout('go()', 10)", true},
		{"setTimeout(go, 10)", false},
		{"el.setAttribute('style', 'color: red')", true},
		{"el.textContent = name;", false},
		{"retrieval(x)", false},
		{"api.evaluate(x)", false},
	}
	for _, tt := range tests {
		bad := false
		for _, u := range unsafeJS {
			bad = bad || u.re.MatchString(tt.line)
		}
		if bad != tt.bad {
			t.Errorf("%q: flagged %v, want %v", tt.line, bad, tt.bad)
		}
	}
}
