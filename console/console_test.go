package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// serve runs one request through h and returns the recorded response.
func serve(t *testing.T, h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func embedded(t *testing.T) fs.FS {
	t.Helper()
	sub, err := fs.Sub(web, "web")
	if err != nil {
		t.Fatalf("embedded files: %v", err)
	}
	return sub
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	h := Handler(Config{})
	tests := []struct {
		method, target string
		status         int
	}{
		{"GET", "/", http.StatusOK},
		{"GET", "/index.html", http.StatusOK},
		{"GET", "/css/app.css", http.StatusOK},
		{"GET", "/js/app.js", http.StatusOK},
		{"HEAD", "/js/api.js", http.StatusOK},
		{"GET", "/no-such-file.js", http.StatusNotFound},
		{"GET", "/js/", http.StatusNotFound},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"DELETE", "/js/app.js", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			w := serve(t, h, tt.method, tt.target, nil)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			want := map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			}
			for k, v := range want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestCSPForbidsInlineAndOtherOrigins(t *testing.T) {
	for _, part := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'", "img-src 'self' data:"} {
		if !strings.Contains(ContentSecurityPolicy, part) {
			t.Errorf("CSP lacks %q", part)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(ContentSecurityPolicy, bad) {
			t.Errorf("CSP allows %q", bad)
		}
	}
}

func TestIndexAtRoot(t *testing.T) {
	h := Handler(Config{})
	want, err := fs.ReadFile(embedded(t), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/", "/index.html", "/?x=1"} {
		w := serve(t, h, "GET", target, nil)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d", target, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", target, ct)
		}
		if !bytes.Equal(w.Body.Bytes(), want) {
			t.Errorf("GET %s: body is not index.html", target)
		}
	}
}

func TestNotFoundAndNoListing(t *testing.T) {
	files := fstest.MapFS{
		"index.html":      {Data: []byte("<!doctype html><title>x</title>")},
		"js/app.js":       {Data: []byte("export {};")},
		"js/pages/a.js":   {Data: []byte("export {};")},
		"vendor/README":   {Data: []byte("run make console-assets")},
		".hidden":         {Data: []byte("secret")},
		"img/logo.svg":    {Data: []byte("<svg/>")},
		"css/empty/.keep": {Data: nil},
	}
	h := Handler(Config{Files: files})
	for _, target := range []string{"/js", "/js/", "/js/pages/", "/css/empty/", "/nope", "/js/app.js/", "/js//app.js",
		"/js/../index.html", "/%2e%2e/console.go", "/app.js", "/img"} {
		w := serve(t, h, "GET", target, nil)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, w.Code)
		}
		if strings.Contains(w.Body.String(), "app.js") || strings.Contains(w.Body.String(), "<a href") {
			t.Errorf("GET %s: body lists files: %q", target, w.Body.String())
		}
	}
	if w := serve(t, h, "GET", "/js/pages/a.js", nil); w.Code != http.StatusOK {
		t.Errorf("GET /js/pages/a.js: status %d", w.Code)
	}
}

func TestGzip(t *testing.T) {
	h := Handler(Config{})
	plain, err := fs.ReadFile(embedded(t), "css/app.css")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			w := serve(t, h, "GET", "/css/app.css", map[string]string{"Accept-Encoding": tt.accept})
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary %q", got)
			}
			if got := w.Header().Get("Content-Length"); got != strconv.Itoa(w.Body.Len()) {
				t.Errorf("Content-Length %s for %d bytes", got, w.Body.Len())
			}
			body := w.Body.Bytes()
			if enc := w.Header().Get("Content-Encoding"); (enc == "gzip") != tt.gzip {
				t.Fatalf("Content-Encoding %q, want gzip=%v", enc, tt.gzip)
			}
			if tt.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			if !bytes.Equal(body, plain) {
				t.Error("body differs from the file")
			}
		})
	}
	// Images that do not compress are sent as they are.
	w := serve(t, Handler(Config{Files: fstest.MapFS{"a.png": {Data: bytes.Repeat([]byte{1}, 4096)}}}), "GET", "/a.png",
		map[string]string{"Accept-Encoding": "gzip"})
	if enc := w.Header().Get("Content-Encoding"); enc != "" {
		t.Errorf("png: Content-Encoding %q", enc)
	}
}

func TestHead(t *testing.T) {
	h := Handler(Config{})
	get := serve(t, h, "GET", "/js/app.js", nil)
	head := serve(t, h, "HEAD", "/js/app.js", nil)
	if head.Code != http.StatusOK {
		t.Fatalf("HEAD status %d", head.Code)
	}
	if head.Body.Len() != 0 {
		t.Errorf("HEAD has a body of %d bytes", head.Body.Len())
	}
	for _, k := range []string{"Content-Length", "Content-Type", "ETag"} {
		if head.Header().Get(k) == "" || head.Header().Get(k) != get.Header().Get(k) {
			t.Errorf("%s: HEAD %q, GET %q", k, head.Header().Get(k), get.Header().Get(k))
		}
	}
	if ct := head.Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	w := serve(t, Handler(Config{}), "PUT", "/index.html", nil)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestETagRevalidation(t *testing.T) {
	h := Handler(Config{})
	w := serve(t, h, "GET", "/css/app.css", nil)
	etag := w.Header().Get("ETag")
	if etag == "" || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, w.Header().Get("Cache-Control"))
	}
	w = serve(t, h, "GET", "/css/app.css", map[string]string{"If-None-Match": etag, "Accept-Encoding": "gzip"})
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("status %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
	w = serve(t, h, "GET", "/css/app.css", map[string]string{"If-None-Match": `"other"`})
	if w.Code != http.StatusOK {
		t.Errorf("other ETag: status %d", w.Code)
	}
}

var (
	// attrRef finds src= and href= values in HTML.
	attrRef = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	// importRef finds static and dynamic relative imports in JavaScript,
	// and any other quoted relative path of a module (a list of modules
	// to import).
	importRef = regexp.MustCompile(`(?:(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}/[^'"]+)['"])|['"](\.{1,2}/[^'"\s]+\.js)['"]`)
	// cssRef finds url() references in CSS.
	cssRef = regexp.MustCompile(`url\(\s*['"]?([^'")]+)['"]?\s*\)`)
)

// TestReferencedFilesExist reads index.html, the stylesheet and every
// JavaScript module without running them and checks that every file they
// name (scripts, styles, icons, imported modules) is there.
func TestReferencedFilesExist(t *testing.T) {
	files := embedded(t)
	check := func(from, ref string) {
		t.Helper()
		if ref == "" || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "data:") {
			return
		}
		if strings.Contains(ref, "://") || strings.HasPrefix(ref, "//") {
			t.Errorf("%s refers to another origin: %s", from, ref)
			return
		}
		ref, _, _ = strings.Cut(ref, "?")
		p := path.Clean(path.Join(path.Dir(from), ref))
		if strings.HasPrefix(ref, "/") {
			p = strings.TrimPrefix(path.Clean(ref), "/")
		}
		if _, err := fs.Stat(files, p); err != nil {
			t.Errorf("%s refers to %s, which is missing", from, ref)
		}
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := attrRef.FindAllStringSubmatch(string(index), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html names %d files; want at least the stylesheet and app.js", len(refs))
	}
	for _, m := range refs {
		check("index.html", m[1])
	}
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "vendor/") {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		switch path.Ext(p) {
		case ".js":
			for _, m := range importRef.FindAllStringSubmatch(withoutComments(string(body)), -1) {
				check(p, m[1]+m[2])
			}
		case ".css":
			for _, m := range cssRef.FindAllStringSubmatch(string(body), -1) {
				check(p, m[1])
			}
		case ".html":
			if strings.Contains(string(body), "<script>") || strings.Contains(string(body), " style=\"") {
				t.Errorf("%s has inline script or style, which the CSP refuses", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate", false},
		{"gzip;q=0.001", true},
		{"gzip; q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=bad", false},
		{"br, *;q=0.1", true},
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// withoutComments drops the lines of JavaScript that are comments, whose
// examples are not imports.
func withoutComments(src string) string {
	var b strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "//") || strings.HasPrefix(t, "*") || strings.HasPrefix(t, "/*") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
