package hollow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
)

// credentialsDir is the directory under Config.DataDir that holds one
// credentials file per hollow host.
const credentialsDir = "hollow-hosts"

// Credentials are what a hollow host got when it joined. Only the token is
// needed to act as the host; hollow hosts serve nothing, so the agent
// certificate of the join is not kept.
type Credentials struct {
	// Server is the base URL the host joined.
	Server string `json:"server"`
	// Host is the host's name.
	Host string `json:"host"`
	// Token is the host's bearer token.
	Token string `json:"token"`
}

// credentialsPath returns the file of host name in dir.
func credentialsPath(dir, name string) string { return filepath.Join(dir, name+".json") }

// loadCredentials reads the credentials of host name from dir. It returns
// (nil, nil) when there are none.
func loadCredentials(dir, name string) (*Credentials, error) {
	path := credentialsPath(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.Host != name || c.Token == "" {
		return nil, fmt.Errorf("%s: host %q or token missing", path, c.Host)
	}
	return &c, nil
}

// saveCredentials writes c to dir atomically: a crash leaves either the
// old file or the new one.
func saveCredentials(dir string, c Credentials) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	return atomicfile.WriteFile(credentialsPath(dir, c.Host), append(data, '\n'), 0o600)
}
