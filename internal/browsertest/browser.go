// Package browsertest drives a headless Chromium (Debian's chromium
// package) with chromedp for the end-to-end tests and benchmarks of the
// web console: it starts the browser against a console, opens pages that
// each have cookies of their own (one signed-in user each), waits for
// what a page shows with deadlines, runs requests from a page's own
// context and takes screenshots. It is for tests only, like
// net/http/httptest.
//
// The browser trusts exactly the console's server certificate: the
// certificate is verified in Go against the cluster CA, and the SHA-256
// of its public key is handed to Chromium with
// --ignore-certificate-errors-spki-list. Chromium on Linux reads trust
// anchors only from an NSS database (which needs certutil and a profile
// prepared in advance), and the address a test browses to (a loopback
// forwarder into a network namespace) is not in the certificate; the pin
// accepts that one key and no other certificate, unlike
// --ignore-certificate-errors.
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ScreenshotsEnv names the environment variable that, when set to a
// directory, makes Page.Screenshot write PNG files there (for example
// OURO_SCREENSHOTS=docs/img, relative to the repository root).
const ScreenshotsEnv = "OURO_SCREENSHOTS"

// DialFunc opens a connection to the console's server, for example
// inside the network namespace the server runs in.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Config says where the console is and how to reach it.
type Config struct {
	// URL is the console's base URL as its server's certificate names it,
	// e.g. https://10.99.0.2:7443.
	URL string
	// CACert is the cluster CA (PEM) that signed the server's certificate.
	CACert []byte
	// Dial, when set, reaches URL's host; the browser then browses to a
	// loopback forwarder that dials with it (the browser itself runs in
	// the test's network namespace).
	Dial DialFunc
	// ExtraKeys are further certificates (DER) whose keys the browser
	// accepts, such as a test's own server on another origin.
	ExtraKeys []*x509.Certificate
	// Width and Height size the window; 1280×800 when zero.
	Width, Height int
}

// Browser is a running headless Chromium.
type Browser struct {
	tb testing.TB
	// URL is the console's base URL as the browser reaches it (no
	// trailing slash).
	URL     string
	alloc   context.Context
	browser context.Context
	log     *lockedBuffer
}

// NeedChromium skips tb unless Chromium is installed.
func NeedChromium(tb testing.TB) string {
	tb.Helper()
	path, err := chromiumPath()
	if err != nil {
		tb.Skipf("%v (scripts/install-deps.sh --test installs it)", err)
	}
	return path
}

// chromiumPath returns Debian's Chromium binary: the real one behind the
// /usr/bin/chromium wrapper script where it is, else chromium on PATH.
func chromiumPath() (string, error) {
	for _, p := range []string{"/usr/lib/chromium/chromium"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium is not installed")
}

// Start starts a headless Chromium for the console at cfg.URL; it ends
// with the test.
func Start(tb testing.TB, cfg Config) *Browser {
	tb.Helper()
	exe := NeedChromium(tb)
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		tb.Fatalf("browsertest: console URL %q: %v", cfg.URL, err)
	}
	dial := cfg.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		dial = d.DialContext
	}
	cert, err := serverCert(dial, u.Host, cfg.CACert)
	if err != nil {
		tb.Fatalf("browsertest: %v", err)
	}
	pins := []string{spkiHash(cert)}
	for _, c := range cfg.ExtraKeys {
		pins = append(pins, spkiHash(c))
	}
	b := &Browser{tb: tb, URL: strings.TrimRight(cfg.URL, "/"), log: &lockedBuffer{}}
	if cfg.Dial != nil {
		addr := forward(tb, dial, u.Host)
		b.URL = "https://" + addr
	}
	w, h := cfg.Width, cfg.Height
	if w == 0 {
		w, h = 1280, 800
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(w, h),
		// Tests run as root, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.CombinedOutput(b.log),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(func(string, ...any) {}))
	b.alloc, b.browser = alloc, browser
	tb.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		if tb.Failed() {
			tb.Logf("chromium output:\n%s", tail(b.log.String(), 3000))
		}
	})
	// The first run starts the browser, which lives as long as the
	// context of that run: it takes no timeout.
	if err := chromedp.Do(browser); err != nil {
		tb.Fatalf("browsertest: start %s: %v\n%s", exe, err, tail(b.log.String(), 3000))
	}
	return b
}

// serverCert dials host, verifies its certificate against the CA and
// returns the certificate.
func serverCert(dial DialFunc, host string, caPEM []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no certificate in the cluster CA")
	}
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		return nil, fmt.Errorf("console address %q: %w", host, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial the console at %s: %w", host, err)
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12})
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS to the console at %s: %w", host, err)
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

// spkiHash is the form --ignore-certificate-errors-spki-list takes: the
// base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo.
func spkiHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// forward listens on a free loopback port and copies every connection to
// target, opened with dial; it returns the listening address.
func forward(tb testing.TB, dial DialFunc, target string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("browsertest: forwarder: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := dial(ctx, "tcp", target)
				cancel()
				if err != nil {
					in.Close()
					return
				}
				track(in, true)
				track(out, true)
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					io.Copy(dst, src)
					if tc, ok := dst.(*net.TCPConn); ok {
						tc.CloseWrite()
					}
					done <- struct{}{}
				}
				go pipe(out, in)
				go pipe(in, out)
				<-done
				<-done
				in.Close()
				out.Close()
				track(in, false)
				track(out, false)
			})
		}
	})
	tb.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// NewPage opens a tab in a browser context of its own: its cookies (its
// session) are its own. It closes when the test ends.
func (b *Browser) NewPage(tb testing.TB) *Page {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(b.browser, chromedp.WithNewBrowserContext())
	tb.Cleanup(cancel)
	p := &Page{tb: tb, b: b, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("browsertest: new page: %v", err)
	}
	return p
}

// Screenshots returns the directory screenshots go to, or "" when
// ScreenshotsEnv is unset. A relative directory is taken from the
// repository root (the directory holding go.mod above the test's).
func Screenshots(tb testing.TB) string {
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, dir)
		}
		if filepath.Dir(d) == d {
			return filepath.Join(wd, dir)
		}
	}
}

// lockedBuffer keeps the browser's output for a failing test's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 1<<20 {
		l.b = l.b[len(l.b)-1<<19:]
	}
	return len(p), nil
}

// String returns the output without the lines about D-Bus, which a
// headless browser in a test has none of.
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(string(l.b), "\n") {
		if !strings.Contains(line, ":ERROR:dbus/") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
