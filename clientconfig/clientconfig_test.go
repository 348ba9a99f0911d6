package clientconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "ouro", "config.yaml")
	want := &Config{}
	want.Upsert(Context{Name: "lab", Server: "https://10.0.0.2:7443", Token: "ouro_a_b", Project: "web",
		CACert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, true)
	want.Upsert(Context{Name: "home", Server: "https://127.0.0.1:7443"}, false)
	if err := want.Save(path); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	cur, err := got.Current()
	if err != nil || cur.Name != "lab" || cur.Project != "web" {
		t.Fatalf("Current = %+v, %v; want lab/web", cur, err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %o, want 600", perm)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode %o, want 700", perm)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the config (no temporary files left)", len(entries))
	}
}

func TestSaveReplacesAndKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("currentContext: old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Config{}
	c.Upsert(Context{Name: "new", Server: "https://h:1"}, true)
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %o after replacing a 0644 file, want 600", perm)
	}
	got, err := Load(path)
	if err != nil || got.CurrentContext != "new" {
		t.Fatalf("Load = %+v, %v", got, err)
	}
}

func TestLoadMissingFileIsEmpty(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "does-not-exist.yaml"))
	if err != nil {
		t.Fatalf("Load of a missing file: %v", err)
	}
	if len(c.Contexts) != 0 || c.CurrentContext != "" {
		t.Fatalf("got %+v, want empty", c)
	}
	if _, err := c.Current(); !errors.Is(err, ErrNoCurrentContext) {
		t.Fatalf("Current on empty config = %v, want ErrNoCurrentContext", err)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"not yaml", "contexts: [\n", "parse"},
		{"unnamed context", "contexts:\n- server: https://a:1\n", "name is empty"},
		{"duplicate", "contexts:\n- name: a\n- name: a\n", "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	tests := []struct {
		name, ouro, xdg, home, want string
	}{
		{"OURO_CONFIG wins", "/x/ouro.yaml", "/xdg", "/home/u", "/x/ouro.yaml"},
		{"XDG", "", "/xdg", "/home/u", "/xdg/ouro/config.yaml"},
		{"home", "", "", "/home/u", "/home/u/.config/ouro/config.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvConfig, tt.ouro)
			t.Setenv("XDG_CONFIG_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := DefaultPath()
			if err != nil || got != tt.want {
				t.Fatalf("DefaultPath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestOuroConfigOverrideRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "elsewhere.yaml")
	t.Setenv(EnvConfig, path)
	p, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{}
	c.Upsert(Context{Name: "a", Server: "https://a:1"}, true)
	if err := c.Save(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("config not written to $OURO_CONFIG: %v", err)
	}
}

func TestUpsertAndRemove(t *testing.T) {
	c := &Config{}
	c.Upsert(Context{Name: "a", Server: "https://a:1"}, true)
	c.Upsert(Context{Name: "b", Server: "https://b:1"}, false)
	c.Upsert(Context{Name: "a", Server: "https://a:2"}, false)
	if len(c.Contexts) != 2 || c.Find("a").Server != "https://a:2" || c.CurrentContext != "a" {
		t.Fatalf("after upserts: %+v", c)
	}
	if !c.Remove("a") || c.Remove("a") {
		t.Fatal("Remove should report true once, then false")
	}
	if c.CurrentContext != "" || c.Find("a") != nil {
		t.Fatalf("after Remove: %+v", c)
	}
	c.CurrentContext = "gone"
	if _, err := c.Current(); err == nil || !strings.Contains(err.Error(), "known: b") {
		t.Fatalf("Current with a dangling name = %v", err)
	}
}
