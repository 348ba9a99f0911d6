package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
)

func TestJoinWritesCredentials(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Labels = map[string]string{"zone": "a"}
	cfg.Taints = []string{"gpu"}
	stop := h.start(t, cfg)
	waitFor(t, "heartbeats", func() bool { return h.beats() > 0 })
	waitFor(t, "host status", func() bool { return h.host(t).Status.AgentEndpoint != "" })
	stop()

	req := h.joinRequests(t)[0]
	if req.Name != testHost || req.Address != "127.0.0.1" || !strings.HasPrefix(req.AgentEndpoint, "https://127.0.0.1:") ||
		req.Architecture != runtime.GOARCH || !slices.Equal(req.Drivers, []string{"fake"}) ||
		req.Labels["zone"] != "a" || !slices.Equal(req.Taints, []string{"gpu"}) || req.Capacity.VCPUs != runtime.NumCPU()*DefaultCPUOvercommit {
		t.Errorf("join request = %+v", req)
	}
	for _, name := range []string{credentials.File, credentials.KeyFile, credentials.CertFile} {
		st, err := os.Stat(filepath.Join(h.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	data, err := os.ReadFile(filepath.Join(h.dir, credentials.File))
	if err != nil {
		t.Fatal(err)
	}
	var c credentials.Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c.Host != testHost || c.Server != h.api.URL || c.Token == "" || !strings.Contains(c.CACert, "BEGIN CERTIFICATE") {
		t.Errorf("credentials = %+v", c)
	}
	host := h.host(t)
	if host.Status.Phase != "Ready" || host.Status.AgentEndpoint != req.AgentEndpoint || host.Status.AgentVersion != Version ||
		host.Status.Capacity.MemoryMiB <= 0 {
		t.Errorf("host status = %+v, want the agent's facts and the phase kept", host.Status)
	}

	// A restart uses the stored credentials, without a join token.
	cfg = h.config()
	cfg.JoinToken = ""
	cfg.Name = ""
	h.start(t, cfg)
	beats := h.beats()
	waitFor(t, "heartbeats with stored credentials", func() bool { return h.beats() > beats })
	if joins := h.joins(); joins != 1 {
		t.Errorf("%d joins, want 1", joins)
	}
}

func TestNoCredentialsAndNoJoinToken(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.JoinToken = ""
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "join token") {
		t.Fatalf("Run = %v, want an error about the missing join token", err)
	}
}

func TestRefusedTokenJoinsAgain(t *testing.T) {
	h := newHarness(t)
	h.start(t, h.config())
	waitFor(t, "first join", func() bool { return h.joins() == 1 })
	h.revokeHostTokens(t)
	waitFor(t, "second join", func() bool { return h.joins() == 2 })
	beats := h.beats()
	waitFor(t, "heartbeats with the new token", func() bool { return h.beats() > beats })

	// Instances still converge with the new credentials.
	key, _ := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs("Running"))
}

func TestNewValidates(t *testing.T) {
	h := newHarness(t)
	for name, mutate := range map[string]func(*Config){
		"no data dir":  func(c *Config) { c.DataDir = "" },
		"no drivers":   func(c *Config) { c.Drivers = nil },
		"bad listen":   func(c *Config) { c.Listen = "7444" },
		"bad address":  func(c *Config) { c.AdvertiseAddress = "host.example" },
		"bad name":     func(c *Config) { c.Name = "Host_1" },
		"negative cpu": func(c *Config) { c.CPUOvercommit = -1 },
	} {
		cfg := h.config()
		mutate(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	a, err := New(Config{DataDir: t.TempDir(), Drivers: h.config().Drivers})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.Listen != DefaultListen || a.cfg.CPUOvercommit != DefaultCPUOvercommit ||
		a.cfg.HeartbeatInterval != DefaultHeartbeatInterval || a.cfg.LeaseTTL != DefaultLeaseTTL {
		t.Errorf("defaults not applied: %+v", a.cfg)
	}
}
