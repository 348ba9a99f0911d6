package imageimport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// fetchStallTimeout ends a download that received no byte for this long.
var fetchStallTimeout = 2 * time.Minute

// fetched is a file downloaded into the workspace.
type fetched struct {
	path   string
	name   string // the last element of the URL path, for format hints
	size   int64
	digest string // sha256:<hex> of the bytes
}

// isURL reports whether a source names an http or https URL.
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// fetch downloads rawURL into a partial file of the workspace, hashing it
// as it streams, so no image is ever held in memory. It fails — and the
// caller's cleanup removes the file — on an HTTP error status, a body
// shorter or longer than its Content-Length, a connection cut or stalled,
// or, when wantSHA256 is set, bytes that hash to something else.
func (ws *workspace) fetch(ctx context.Context, rawURL, wantSHA256 string, progress func(done, total int64)) (*fetched, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not a valid URL", rawURL)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "ouro-image-import")
	resp, err := fetchClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download: the server answered %s; check the URL", resp.Status)
	}
	f, err := ws.tempFile("download")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	total := resp.ContentLength
	if progress == nil {
		progress = func(int64, int64) {}
	}
	progress(0, total)
	// A connection that stops sending is cut after fetchStallTimeout.
	stall := time.AfterFunc(fetchStallTimeout, func() {
		cancel(fmt.Errorf("no data for %v", fetchStallTimeout))
	})
	defer stall.Stop()
	body := &progressReader{r: resp.Body, fn: func(n int64) {
		stall.Reset(fetchStallTimeout)
		progress(n, total)
	}}
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		if total >= 0 && n < total {
			return nil, fmt.Errorf("download cut short after %d of %d bytes: %w", n, total, err)
		}
		return nil, fmt.Errorf("download failed after %d bytes: %w", n, err)
	}
	if total >= 0 && n != total {
		return nil, fmt.Errorf("download cut short: got %d bytes, the server announced %d", n, total)
	}
	if n == 0 {
		return nil, errors.New("download: the server sent an empty file")
	}
	progress(n, n) // the total is known now, if it was not announced
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("save download: %w", err)
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := checkSHA256(digest, wantSHA256); err != nil {
		return nil, err
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." {
		name = ""
	}
	return &fetched{path: f.Name(), name: name, size: n, digest: digest}, nil
}

// checkSHA256 compares a digest with the one the user expects (bare hex
// or sha256:hex, any case); an empty want accepts anything.
func checkSHA256(digest, want string) error {
	if want == "" {
		return nil
	}
	if strings.TrimPrefix(digest, "sha256:") != want {
		return fmt.Errorf("sha256 mismatch: the content hashes to %s, but --sha256 says %s; the file is corrupt or not the one meant", strings.TrimPrefix(digest, "sha256:"), want)
	}
	return nil
}

// normalizeSHA256 checks a --sha256 value and returns its lower-case hex.
func normalizeSHA256(s string) (string, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "SHA256:"))
	if len(h) != 64 {
		return "", fmt.Errorf("--sha256 %q is not a SHA-256 sum: want 64 hex digits", truncate(s, 80))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("--sha256 %q is not a SHA-256 sum: want 64 hex digits", truncate(s, 80))
	}
	return h, nil
}

// fetchClient downloads images: the environment's proxy settings, bounded
// connection set-up and waiting for headers, but no overall time limit
// (images are large; fetch cuts stalled transfers instead), and no
// transparent decompression, so the bytes hashed are the bytes served.
var fetchClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: time.Minute,
	DisableCompression:    true,
	ForceAttemptHTTP2:     true,
}}
