package browsertest

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// page is a small page with a form whose submit echoes the typed text.
const testPage = `<!doctype html><title>t</title>
<form id="f"><input id="name"><button>go</button></form><p id="out"></p>
<script type="module" src="/app.js"></script>`

const appJS = `document.getElementById('f').addEventListener('submit', async ev => {
  ev.preventDefault();
  const r = await fetch('/echo', {method: 'POST', body: document.getElementById('name').value});
  document.getElementById('out').textContent = 'said ' + await r.text();
});`

// TestBrowser drives the kit against a TLS server whose certificate is
// trusted only through its CA, directly and through the forwarder.
func TestBrowser(t *testing.T) {
	NeedChromium(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, testPage)
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			io.WriteString(w, appJS)
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s to %s", strings.ToUpper(string(b)), r.Method)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	for _, tc := range []struct {
		name    string
		forward bool
	}{{"direct", false}, {"forwarded", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: srv.URL, CACert: ca}
			if tc.forward {
				cfg.Dial = srv.Client().Transport.(*http.Transport).DialContext
			}
			b := Start(t, cfg)
			if tc.forward == (b.URL == srv.URL) {
				t.Fatalf("browser URL %s, server %s, forwarded %v", b.URL, srv.URL, tc.forward)
			}
			p := b.NewPage(t)
			tr := p.RecordTransfers()
			p.OnNewDocument("window.early = 'yes'")
			p.Open("/")
			var early string
			p.Eval("window.early", &early)
			if early != "yes" {
				t.Errorf("script on new document: window.early = %q", early)
			}
			if n := tr.Sum(func(path string) bool { return path == "/app.js" }); n <= 0 {
				t.Errorf("transfers: %+v, want /app.js", tr.List())
			}
			p.Type("#name", "hello")
			p.Click("button")
			p.WaitText(10*time.Second, "#out", "said HELLO to POST")
			if r := p.Fetch("PUT", "/echo", nil, "x"); r.Status != 200 || r.Body != "X to PUT" {
				t.Errorf("fetch: %+v", r)
			}
			dir := t.TempDir()
			t.Setenv(ScreenshotsEnv, dir)
			p.Screenshot("page")
			if fi, err := os.Stat(filepath.Join(dir, "page.png")); err != nil || fi.Size() == 0 {
				t.Errorf("screenshot: %v", err)
			}
		})
	}
}
