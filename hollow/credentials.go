package hollow

import (
	"fmt"
	"path/filepath"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
)

// credentialsDir is the directory under Config.DataDir that holds one
// credentials file per hollow host.
const credentialsDir = "hollow-hosts"

// credentialsPath returns the file of host name in dir.
func credentialsPath(dir, name string) string { return filepath.Join(dir, name+".json") }

// loadCredentials reads the credentials of host name from dir: a hollow
// host keeps those of the agent's format that it needs to act as the host
// (it serves nothing, so neither the CA nor an agent certificate). It returns
// (nil, nil) when there are none.
func loadCredentials(dir, name string) (*credentials.Credentials, error) {
	path := credentialsPath(dir, name)
	c, err := credentials.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if c != nil && c.Host != name {
		return nil, fmt.Errorf("%s: host %q or token missing", path, c.Host)
	}
	return c, nil
}

// saveCredentials writes c to dir atomically: a crash leaves either the
// old file or the new one.
func saveCredentials(dir string, c credentials.Credentials) error {
	return credentials.WriteFile(credentialsPath(dir, c.Host), c)
}
