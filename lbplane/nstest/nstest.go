// Package nstest builds small networks of namespaces for the data plane's
// tests: a bridge in a namespace of its own, and namespaces attached to it
// by veth pairs with eth0 addressed, like netplane's instance ports, plus
// tiny HTTP members and clients that live in those namespaces.
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// LAN is a bridge that namespaces attach to.
type LAN struct {
	t      testing.TB
	dir    string
	id     string
	Bridge string // namespace path of the bridge
	n      int
}

// NewLAN makes a bridge namespace, removed at the end of the test.
func NewLAN(t testing.TB) *LAN {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	l := &LAN{t: t, dir: t.TempDir(), id: hex.EncodeToString(b)}
	l.Bridge = l.NS("bridge")
	l.run(l.Bridge, "ip", "link", "add", "br0", "type", "bridge")
	l.run(l.Bridge, "ip", "link", "set", "br0", "up")
	return l
}

func (l *LAN) run(ns string, name string, args ...string) {
	l.t.Helper()
	if _, err := netns.Run(ns, "", name, args...); err != nil {
		l.t.Fatal(err)
	}
}

// NS makes an empty namespace with loopback up.
func (l *LAN) NS(name string) string {
	l.t.Helper()
	path := filepath.Join(l.dir, name)
	if _, err := netns.Create(path); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = netns.Delete(path) })
	l.run(path, "ip", "link", "set", "lo", "up")
	return path
}

// Attach makes a namespace whose eth0 is on the bridge with addr (CIDR).
func (l *LAN) Attach(name, addr string) string {
	l.t.Helper()
	ns := l.NS(name)
	l.n++
	peer := fmt.Sprintf("v%s%d", l.id, l.n)
	l.run(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", peer)
	l.run(ns, "ip", "link", "set", peer, "netns", l.Bridge)
	l.run(ns, "ip", "addr", "add", addr, "dev", "eth0")
	l.run(ns, "ip", "link", "set", "eth0", "up")
	l.run(l.Bridge, "ip", "link", "set", peer, "master", "br0")
	l.run(l.Bridge, "ip", "link", "set", peer, "up")
	return ns
}

// Cut sets the bridge side of name's eth0 down or up (a link failure).
func (l *LAN) Cut(ns string, down bool) {
	l.t.Helper()
	state := "up"
	if down {
		state = "down"
	}
	l.run(ns, "ip", "link", "set", "eth0", state)
}

// Member is an HTTP server in a namespace that answers its name on every
// path and fails /health with 500 when Sick.
type Member struct {
	Name string
	Sick atomic.Bool
	Hits atomic.Int64
}

// Serve starts m on addr (host:port) in the namespace ns.
func (m *Member) Serve(t testing.TB, ns, addr string) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if m.Sick.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		m.Hits.Add(1)
		io.WriteString(w, m.Name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// Client makes HTTP requests from the namespace ns, a new connection each.
func Client(ns string) *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := netns.Do(ns, func() error {
					var err error
					c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}

// Get returns the body of url fetched from the namespace of c.
func Get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), err
}
