package hollow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
)

func TestCredentialsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if c, err := loadCredentials(dir, "hollow-0"); c != nil || err != nil {
		t.Fatalf("load from an empty dir = %v, %v; want nil, nil", c, err)
	}
	want := credentials.Credentials{Server: "https://127.0.0.1:1", Host: "hollow-0", Token: "ouro_x_y"}
	if err := saveCredentials(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadCredentials(dir, "hollow-0")
	if err != nil || got == nil || *got != want {
		t.Fatalf("load = %+v, %v; want %+v", got, err, want)
	}
	st, err := os.Stat(credentialsPath(dir, "hollow-0"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries after a save, want 1 (no temporary files left)", len(entries))
	}
}

func TestLoadCredentialsRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not json", "{", "parse"},
		{"other host", `{"host": "hollow-9", "token": "t"}`, "token missing"},
		{"no token", `{"host": "hollow-0"}`, "token missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "hollow-0.json"), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := loadCredentials(dir, "hollow-0")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("load = %+v, %v; want an error saying %q", c, err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	base := Config{Server: "https://127.0.0.1:1", DataDir: "/tmp/x", Count: 3}
	c, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.NamePrefix != "hollow" || c.Capacity != DefaultCapacity || c.HeartbeatInterval != 2*time.Second ||
		c.LeaseTTL != 6*time.Second || c.Concurrency != DefaultConcurrency || c.Logger == nil {
		t.Errorf("defaults = %+v", c)
	}
	bad := []struct {
		name string
		mod  func(*Config)
	}{
		{"no server", func(c *Config) { c.Server = "" }},
		{"no data dir", func(c *Config) { c.DataDir = "" }},
		{"no hosts", func(c *Config) { c.Count = 0 }},
		{"bad prefix", func(c *Config) { c.NamePrefix = "Hollow_" }},
		{"lease shorter than heartbeat", func(c *Config) { c.HeartbeatInterval, c.LeaseTTL = 5*time.Second, 3*time.Second }},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			if _, err := c.withDefaults(); err == nil {
				t.Errorf("config %+v accepted", c)
			}
		})
	}
}

func TestHostName(t *testing.T) {
	if got := HostName("hollow", 12); got != "hollow-12" {
		t.Errorf("HostName = %q", got)
	}
}
