// Package clientconfig reads and writes the client configuration of the
// ouro command: named contexts, each a server, a bearer token, a default
// project and the CA that signed the server's certificate, much like a
// kubeconfig.
//
// The file is YAML and lives at $OURO_CONFIG, else
// $XDG_CONFIG_HOME/ouro/config.yaml, else ~/.config/ouro/config.yaml:
//
//	currentContext: local
//	contexts:
//	- name: local
//	  server: https://127.0.0.1:7443
//	  token: ouro_admin_...
//	  project: default
//	  caCert: |
//	    -----BEGIN CERTIFICATE-----
//	    ...
package clientconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// EnvConfig names the environment variable that overrides the path of the
// configuration file.
const EnvConfig = "OURO_CONFIG"

// Config is the whole client configuration.
type Config struct {
	// CurrentContext names the context used when none is asked for.
	CurrentContext string `json:"currentContext,omitempty"`
	// Contexts are the clouds (or identities in one cloud) the user knows.
	Contexts []Context `json:"contexts,omitempty"`
}

// Context is one way to reach a cloud: a server, credentials and a default
// project.
type Context struct {
	// Name identifies the context in the file and on the command line.
	Name string `json:"name"`
	// Server is the base URL of an API server, e.g. https://10.0.0.2:7443.
	Server string `json:"server"`
	// Token is the bearer token sent with every request.
	Token string `json:"token,omitempty"`
	// Project is the project commands act on unless told otherwise.
	Project string `json:"project,omitempty"`
	// CACert is the PEM of the CA that signed the server certificate;
	// empty means the system roots.
	CACert string `json:"caCert,omitempty"`
}

// Encode returns the configuration as the file holds it.
func (c *Config) Encode() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode client configuration: %w", err)
	}
	return data, nil
}

// ErrNoCurrentContext is returned by Current when no context is selected.
var ErrNoCurrentContext = errors.New("no current context")

// DefaultPath returns where the configuration lives: $OURO_CONFIG, else
// $XDG_CONFIG_HOME/ouro/config.yaml, else ~/.config/ouro/config.yaml.
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvConfig); p != "" {
		return p, nil
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "ouro", "config.yaml"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the client configuration: %w (set %s)", err, EnvConfig)
	}
	return filepath.Join(home, ".config", "ouro", "config.yaml"), nil
}

// Load reads the configuration at path. A missing file is an empty
// configuration, not an error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read client configuration: %w", err)
	}
	var c Config
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse client configuration %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("client configuration %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	seen := make(map[string]bool, len(c.Contexts))
	for i, ctx := range c.Contexts {
		if ctx.Name == "" {
			return fmt.Errorf("contexts[%d]: name is empty", i)
		}
		if seen[ctx.Name] {
			return fmt.Errorf("contexts[%d]: context %q appears twice", i, ctx.Name)
		}
		seen[ctx.Name] = true
	}
	return nil
}

// Save writes the configuration to path atomically: it writes a temporary
// file in the same directory with mode 0600, syncs it and renames it over
// path, so a reader sees the old or the new file and never a part. The
// directory is created with mode 0700 if missing.
func (c *Config) Save(path string) error {
	data, err := c.Encode()
	if err != nil {
		return fmt.Errorf("save client configuration: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save client configuration: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save client configuration: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save client configuration: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save client configuration: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save client configuration: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save client configuration: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save client configuration: %w", err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Find returns the context of that name, or nil.
func (c *Config) Find(name string) *Context {
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i]
		}
	}
	return nil
}

// Names returns the names of all contexts in file order.
func (c *Config) Names() []string {
	names := make([]string, len(c.Contexts))
	for i, ctx := range c.Contexts {
		names[i] = ctx.Name
	}
	return names
}

// Current returns the current context. It fails with ErrNoCurrentContext
// when none is set, and names the known contexts when the current one is
// missing from the file.
func (c *Config) Current() (*Context, error) {
	if c.CurrentContext == "" {
		return nil, ErrNoCurrentContext
	}
	ctx := c.Find(c.CurrentContext)
	if ctx == nil {
		return nil, fmt.Errorf("current context %q is not in the configuration (known: %s)",
			c.CurrentContext, strings.Join(c.Names(), ", "))
	}
	return ctx, nil
}

// Upsert adds ctx, or replaces the context of the same name, and makes it
// the current context when makeCurrent is set.
func (c *Config) Upsert(ctx Context, makeCurrent bool) {
	i := slices.IndexFunc(c.Contexts, func(o Context) bool { return o.Name == ctx.Name })
	if i >= 0 {
		c.Contexts[i] = ctx
	} else {
		c.Contexts = append(c.Contexts, ctx)
	}
	if makeCurrent {
		c.CurrentContext = ctx.Name
	}
}

// Remove deletes the context of that name and reports whether it existed.
// Removing the current context leaves no context current.
func (c *Config) Remove(name string) bool {
	i := slices.IndexFunc(c.Contexts, func(o Context) bool { return o.Name == name })
	if i < 0 {
		return false
	}
	c.Contexts = slices.Delete(c.Contexts, i, i+1)
	if c.CurrentContext == name {
		c.CurrentContext = ""
	}
	return true
}
