// Package hollowtest starts a real Ouroboros server (embedded etcd, API,
// controllers) inside a test or benchmark and runs hollow hosts against
// it. It is for tests only, like net/http/httptest.
package hollowtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/daemon"
	"github.com/ouroboros-cloud/ouro/hollow"
	"github.com/ouroboros-cloud/ouro/internal/freeport"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// Project is where Image and instances of tests live.
const Project = "default"

// ImageName is the image Start makes: one empty layer. Hollow hosts never
// unpack it; it exists because instances must name a Ready image.
const ImageName = "hollow-test"

// Cloud is a running server and an admin client for it.
type Cloud struct {
	// URL is the API base URL.
	URL string
	// CACert is the cluster CA (PEM).
	CACert []byte
	// Admin is a client with the bootstrap admin token.
	Admin *client.Client
	// AdminToken is the bootstrap admin's token (to sign in to the
	// console with).
	AdminToken string
	// Dir is the test's scratch directory.
	Dir string
	// etcdURL is the embedded etcd's client URL (PauseControllers).
	etcdURL string
}

// Start runs a server with embedded etcd on free loopback ports and a
// fresh data dir, makes ImageName and returns once both answer. The
// server stops, and its data is removed, when the test ends.
func Start(tb testing.TB) *Cloud {
	tb.Helper()
	dir := tb.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	etcdURL := "http://" + freeport.Addr(tb)
	srv, err := daemon.StartServer(ctx, daemon.ServerConfig{
		DataDir:       filepath.Join(dir, "server"),
		Listen:        "127.0.0.1:0",
		EtcdClientURL: etcdURL,
		EtcdPeerURL:   "http://" + freeport.Addr(tb),
		Name:          "test",
		Logger:        Logger(tb, slog.LevelWarn),
	})
	if err != nil {
		cancel()
		tb.Fatalf("start server: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		srv.Wait()
	})
	admin, err := client.New(client.Config{Server: srv.URL, Token: srv.AdminToken, CACert: srv.CACert})
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cloud{URL: srv.URL, CACert: srv.CACert, Admin: admin, AdminToken: srv.AdminToken, Dir: dir, etcdURL: etcdURL}
	MakeImage(tb, admin)
	return c
}

// MakeImage uploads an empty tar layer through admin, a cluster admin's
// client, and makes the public image ImageName of it in Project. Start
// calls it; tests that run servers of their own call it once.
func MakeImage(tb testing.TB, admin *client.Client) {
	tb.Helper()
	ctx := context.Background()
	layer := make([]byte, 1024) // two zero blocks: an empty tar archive
	sum := sha256.Sum256(layer)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if err := admin.PutBlob(ctx, digest, int64(len(layer)), bytes.NewReader(layer)); err != nil {
		tb.Fatalf("upload layer: %v", err)
	}
	img := &api.Image{Metadata: api.ObjectMeta{Name: ImageName, Project: Project},
		Spec: api.ImageSpec{Format: api.FormatOCI, Public: true,
			Layers: []api.Blob{{Digest: digest, Size: int64(len(layer)), MediaType: api.MediaTypeLayerTar}},
			Config: api.ImageConfig{Cmd: []string{"sleep", "infinity"}}}}
	if _, err := admin.Create(ctx, img, client.CreateOptions{}); err != nil {
		tb.Fatalf("create image: %v", err)
	}
}

// JoinToken returns a new join token.
func (c *Cloud) JoinToken(tb testing.TB) string {
	tb.Helper()
	jt, err := c.Admin.CreateJoinToken(context.Background(), api.JoinTokenRequest{TTL: "1h"})
	if err != nil || jt.Status.Secret == "" {
		tb.Fatalf("join token: %v", err)
	}
	return jt.Status.Secret
}

// Hollow is a running hollow.Run.
type Hollow struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Stop ends the hollow hosts and returns what Run returned.
func (h *Hollow) Stop() error {
	h.cancel()
	<-h.done
	return h.err
}

// Exited reports whether Run returned, and its error.
func (h *Hollow) Exited() (bool, error) {
	select {
	case <-h.done:
		return true, h.err
	default:
		return false, nil
	}
}

// RunHollow runs hollow hosts against the cloud until Stop or the end of
// the test. Server, CACert and (when empty) JoinToken, DataDir and Logger
// are filled in.
func (c *Cloud) RunHollow(tb testing.TB, cfg hollow.Config) *Hollow {
	tb.Helper()
	cfg.Server, cfg.CACert = c.URL, c.CACert
	if cfg.JoinToken == "" {
		cfg.JoinToken = c.JoinToken(tb)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(c.Dir, "hollow")
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(tb, slog.LevelWarn)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hollow{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.err = hollow.Run(ctx, cfg)
	}()
	tb.Cleanup(func() { h.Stop() })
	return h
}

// WaitHostsReady waits until n hosts named prefix-* are Ready and labelled
// hollow, and returns them.
func (c *Cloud) WaitHostsReady(tb testing.TB, h *Hollow, prefix string, n int, timeout time.Duration) []api.Host {
	tb.Helper()
	var ready []api.Host
	wait.ForDetail(tb, timeout, fmt.Sprintf("%d hollow hosts Ready", n), func() (bool, string) {
		if exited, err := h.Exited(); exited {
			tb.Fatalf("hollow.Run returned early: %v", err)
		}
		hosts, _, err := client.ListAll[api.Host](context.Background(), c.Admin, api.HostKind, "", client.ListOptions{
			LabelSelector: api.LabelHollow + "=true"})
		if err != nil {
			return false, err.Error()
		}
		ready = ready[:0]
		for _, h := range hosts {
			if strings.HasPrefix(h.Metadata.Name, prefix+"-") && h.Status.Phase == api.HostReady {
				ready = append(ready, h)
			}
		}
		return len(ready) == n, fmt.Sprintf("%d of %d Ready", len(ready), n)
	})
	return ready
}

// Logger returns a logger that writes records of level and above to the
// test log.
func Logger(tb testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tbWriter{tb: tb}, &slog.HandlerOptions{Level: level}))
}

// tbWriter writes to the test log until the test ends, then nowhere
// (goroutines may log while they stop).
type tbWriter struct {
	tb testing.TB
	mu sync.Mutex
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { recover() }() // Log after the test ended panics
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = (*tbWriter)(nil)
