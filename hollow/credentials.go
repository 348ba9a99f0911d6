package hollow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	return writeFileAtomic(credentialsPath(dir, c.Host), append(data, '\n'), 0o600)
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
