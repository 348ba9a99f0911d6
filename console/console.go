// Package console serves the web console: the static HTML, CSS and
// JavaScript of console/web, embedded in the binary, on the API's HTTPS
// port at "/". The console itself talks only to the API under /v1 with
// the user's session cookie; this package holds no state and answers no
// API calls.
//
// Every response carries a Content-Security-Policy that allows no inline
// script or style and no other origin, together with nosniff and
// no-referrer. Text assets are gzipped once, when the handler is built,
// and served compressed to clients that accept gzip.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// web holds console/web. The "all:" prefix is not used: files whose names
// start with "." or "_" stay out, and vendor/ (built by make
// console-assets, not in git) is taken when it is there.
//
//go:embed web
var web embed.FS

// ContentSecurityPolicy is sent with every response of the console.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Config configures Handler.
type Config struct {
	// Files replaces the embedded console/web (tests); its root is the
	// console's root. Nil serves the embedded files.
	Files fs.FS
}

// asset is one file, read and compressed once.
type asset struct {
	contentType string
	body        []byte
	gzipped     []byte // nil when gzip does not pay off
	etag        string
}

// handler serves the assets.
type handler struct {
	assets map[string]*asset // by path without the leading "/"
}

// Handler returns the handler of the console's static files: "/" serves
// index.html, every other path the file of that name, and anything else
// (directories included) 404. Only GET and HEAD are allowed. It panics if
// the files cannot be read, which for the embedded ones is a build error.
func Handler(cfg Config) http.Handler {
	files := cfg.Files
	if files == nil {
		sub, err := fs.Sub(web, "web")
		if err != nil {
			panic(fmt.Sprintf("console: embedded files: %v", err))
		}
		files = sub
	}
	h, err := load(files)
	if err != nil {
		panic(fmt.Sprintf("console: %v", err))
	}
	return h
}

// load reads every regular file of files.
func load(files fs.FS) (*handler, error) {
	h := &handler{assets: make(map[string]*asset)}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		a, err := newAsset(p, body)
		if err != nil {
			return err
		}
		h.assets[p] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load the console's files: %w", err)
	}
	return h, nil
}

func newAsset(name string, body []byte) (*asset, error) {
	sum := sha256.Sum256(body)
	a := &asset{contentType: contentType(name), body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if !compressible(a.contentType) || len(body) < 256 {
		return a, nil
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	if _, err := zw.Write(body); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	if buf.Len() < len(body) {
		a.gzipped = buf.Bytes()
	}
	return a, nil
}

// contentTypes by file extension; others are application/octet-stream.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".txt":   "text/plain; charset=utf-8",
	".md":    "text/plain; charset=utf-8",
	".woff2": "font/woff2",
}

func contentType(name string) string {
	if t, ok := contentTypes[path.Ext(name)]; ok {
		return t
	}
	return "application/octet-stream"
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") || strings.HasPrefix(contentType, "application/json") ||
		strings.HasPrefix(contentType, "image/svg+xml")
}

// setSecurityHeaders sets the headers every response carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	setSecurityHeaders(hdr)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	a, ok := h.assets[name]
	if !ok || path.Clean("/"+name) != "/"+name {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	// No hashed file names: the browser revalidates every asset (a cheap
	// 304 thanks to the ETag), so an upgraded server is never half-seen.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	body := a.body
	if a.gzipped != nil {
		hdr.Set("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			hdr.Set("Content-Encoding", "gzip")
			body = a.gzipped
		}
	}
	if etagMatches(r.Header.Get("If-None-Match"), a.etag) {
		hdr.Del("Content-Type")
		hdr.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (named, or by "*", with a q-value above zero).
func acceptsGzip(header string) bool {
	star := false
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		ok := qPositive(params)
		if coding == "gzip" {
			return ok
		}
		star = ok
	}
	return star
}

// qPositive reports whether the parameters of one coding leave its
// q-value above zero.
func qPositive(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return err == nil && q > 0
	}
	return true
}

// etagMatches reports whether an If-None-Match header names etag.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
