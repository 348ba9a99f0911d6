package probe

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

// namespace creates a network namespace with lo up, removed at cleanup.
func namespace(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	testenv.NeedBinary(t, "ip")
	path := filepath.Join(t.TempDir(), "probe-ns")
	if _, err := netns.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(path) })
	if _, err := netns.Run(path, "", "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	return path
}

// listenIn listens on 127.0.0.1 inside the namespace and serves h there
// until the test ends; it returns the port.
func listenIn(t *testing.T, ns string, h http.Handler) int {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// freeHere reports whether port is free on the caller's loopback.
func freeHere(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func TestCheckInNamespace(t *testing.T) {
	ns := namespace(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusInternalServerError) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	port := listenIn(t, ns, mux)
	// A port with nothing behind it inside the namespace.
	var unused int
	if err := netns.Do(ns, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		unused = ln.Addr().(*net.TCPAddr).Port
		return ln.Close()
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		hc      api.HealthCheck
		wantErr string // "" for success
	}{
		{"tcp open", api.HealthCheck{Kind: api.HealthTCP, Port: port}, ""},
		{"tcp closed", api.HealthCheck{Kind: api.HealthTCP, Port: unused}, "connection refused"},
		{"http 200", api.HealthCheck{Kind: api.HealthHTTP, Port: port, Path: "/healthz"}, ""},
		{"http 302 counts as up", api.HealthCheck{Kind: api.HealthHTTP, Port: port, Path: "/moved"}, ""},
		{"http 404", api.HealthCheck{Kind: api.HealthHTTP, Port: port, Path: "/missing"}, "404"},
		{"http 500", api.HealthCheck{Kind: api.HealthHTTP, Port: port, Path: "/broken"}, "500"},
		{"http timeout", api.HealthCheck{Kind: api.HealthHTTP, Port: port, Path: "/slow", TimeoutSeconds: 1}, "deadline"},
		{"http refused", api.HealthCheck{Kind: api.HealthHTTP, Port: unused}, "connection refused"},
		{"running is not probed", api.HealthCheck{Kind: api.HealthRunning, Port: port}, "cannot be probed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := Check(context.Background(), ns, "127.0.0.1", tt.hc)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Check = %v, want an error with %q", err, tt.wantErr)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Check took %s, beyond its timeout", d)
			}
		})
	}

	// The listener exists only inside the namespace: from the caller's
	// namespace the same probe fails.
	if freeHere(port) {
		if err := Check(context.Background(), "", "127.0.0.1", api.HealthCheck{Kind: api.HealthTCP, Port: port}); err == nil {
			t.Error("probe from the caller's namespace reached the namespace's listener")
		}
	}
}

func TestDefaults(t *testing.T) {
	var hc api.HealthCheck
	if Interval(hc) != 2*time.Second || Timeout(hc) != time.Second || FailureThreshold(hc) != 3 {
		t.Errorf("defaults = %s %s %d", Interval(hc), Timeout(hc), FailureThreshold(hc))
	}
	hc = api.HealthCheck{IntervalSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 1}
	if Interval(hc) != 5*time.Second || Timeout(hc) != 2*time.Second || FailureThreshold(hc) != 1 {
		t.Errorf("set = %s %s %d", Interval(hc), Timeout(hc), FailureThreshold(hc))
	}
	if Probes(nil) || Probes(&api.HealthCheck{Kind: api.HealthRunning}) || !Probes(&api.HealthCheck{Kind: api.HealthHTTP}) {
		t.Error("Probes is wrong")
	}
}
