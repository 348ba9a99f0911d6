package ceph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

func TestParseKeyring(t *testing.T) {
	const key = "AQBSJnRnAAAAABAAS8eqfyVLnn8ub6T7nQ4wNw=="
	tests := []struct {
		text, user string
		ok         bool
	}{
		{"[client.ouro]\n\tkey = " + key + "\n\tcaps mon = \"profile rbd\"\n", "ouro", true},
		{key, "admin", true},
		{"[mon.]\n\tkey = " + key, "", false},
		{"[client.x]\n\tkey = notakey", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		user, got, err := ParseKeyring(tt.text, "admin")
		if (err == nil) != tt.ok || user != tt.user || (tt.ok && got != key) {
			t.Errorf("ParseKeyring(%q) = %q, %q, %v", tt.text, user, got, err)
		}
	}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestValidate checks pool definitions against the real cluster: each
// wrong part is refused with its field named.
func TestValidate(t *testing.T) {
	b, _ := newBackend(t)
	ctx := testCtx(t, 3*time.Minute)
	good := Config{Monitors: b.cfg.Monitors, Pool: b.cfg.Pool, User: b.cfg.User, Key: b.cfg.Key}
	otherKey := base64.StdEncoding.EncodeToString(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0}, make([]byte, 16)...))
	// A listener that accepts and says nothing: not a monitor.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"good", func(*Config) {}, ""},
		{"no monitors", func(c *Config) { c.Monitors = nil }, "monitors"},
		{"bad monitor", func(c *Config) { c.Monitors = []string{"127.0.0.1:99999"} }, "monitors"},
		{"closed monitor", func(c *Config) { c.Monitors = []string{closedPort(t)} }, "monitors"},
		{"mute monitor", func(c *Config) { c.Monitors = []string{mute.Addr().String()} }, "monitors"},
		{"wrong key", func(c *Config) { c.Key = otherKey }, "keyring"},
		{"unknown user", func(c *Config) { c.User = "nobody" }, "keyring"},
		{"bad key", func(c *Config) { c.Key = "x" }, "keyring"},
		{"missing pool", func(c *Config) { c.Pool = "nosuchpool" }, "pool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			start := time.Now()
			err := Validate(ctx, cfg, 20*time.Second)
			var ae *api.Error
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.field != "" && (!errors.As(err, &ae) || ae.Field != tt.field):
				t.Fatalf("Validate = %v, want an error on field %q", err, tt.field)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("Validate took %v", d)
			}
			t.Logf("%v (%v)", err, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestStallBelowMinSize kills two of the three OSDs: the pool is below
// min_size, I/O waits without an error, and a call fails with ErrStalled
// after the backend's timeout instead of hanging.
func TestStallBelowMinSize(t *testing.T) {
	slow, c := newBackend(t)
	ctx := testCtx(t, 5*time.Minute)
	cfg := slow.cfg
	cfg.Dir, cfg.Timeout = t.TempDir(), 5*time.Second
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const id = "stall"
	if err := b.Create(ctx, id, mib, nil); err != nil {
		t.Fatal(err)
	}
	ids := c.OSDIDs()
	killed := ids[:2]
	t.Cleanup(func() {
		for _, id := range killed {
			_ = c.StartOSD(id)
		}
		_ = c.WaitHealthy(context.Background())
		_ = b.Delete(context.Background(), "stall")
	})
	for _, id := range killed {
		if err := c.KillOSD(id); err != nil {
			t.Fatal(err)
		}
	}
	wait.ForDetail(t, time.Minute, "two OSDs marked down", func() (bool, string) {
		out, err := c.Ceph(ctx, "osd", "stat")
		if err != nil {
			return false, err.Error()
		}
		var st struct {
			Up int `json:"num_up_osds"`
		}
		_ = json.Unmarshal(out, &st)
		return st.Up == 1, string(out)
	})
	start := time.Now()
	_, err = b.Size(ctx, id)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Size below min_size: %v, want ErrStalled", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the stall was reported after %v, want about 5 s", d)
	}
	for _, id := range killed {
		if err := c.StartOSD(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Size(ctx, id); err != nil {
		t.Fatalf("Size once the OSDs are back: %v", err)
	}
}
