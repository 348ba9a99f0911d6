// Package credentials keeps a host's credentials in the agent's data
// directory and gets them by joining the cluster with a join token: the
// host's bearer token for the API, the cluster CA, and the agent's key
// pair, whose certificate the agent endpoint presents to the servers.
package credentials

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/atomicfile"
	"github.com/ouroboros-cloud/ouro/pki"
)

// Files kept in the data directory. credentials.json is written last: it
// is the commit point of a join.
const (
	File     = "credentials.json"
	KeyFile  = "agent.key"
	CertFile = "agent.crt"
)

// Credentials are what a host gets when it joins.
type Credentials struct {
	// Server is the base URL the host joined.
	Server string `json:"server"`
	// Host is the host's name.
	Host string `json:"host"`
	// Token is the host's bearer token.
	Token string `json:"token"`
	// CACert is the cluster CA (PEM).
	CACert string `json:"caCert"`
}

// Identity is a host's credentials and its agent certificate.
type Identity struct {
	Creds Credentials
	Cert  tls.Certificate
}

// Load reads the credentials and the agent key pair from dir. It
// returns (nil, nil) when any of the files is missing or the key pair is
// unusable (a join was interrupted): the caller joins again.
func Load(dir string) (*Identity, error) {
	data, err := os.ReadFile(filepath.Join(dir, File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, File), err)
	}
	if c.Host == "" || c.Token == "" {
		return nil, fmt.Errorf("%s: host or token missing", filepath.Join(dir, File))
	}
	certPEM, certErr := os.ReadFile(filepath.Join(dir, CertFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, KeyFile))
	for _, err := range []error{certErr, keyErr} {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read agent key pair: %w", err)
		}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil // half-written by an interrupted join
	}
	return &Identity{Creds: c, Cert: pair}, nil
}

// Save writes the key pair, then the credentials, each atomically.
func Save(dir string, c Credentials, keyPEM, certPEM []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CertFile), certPEM, 0o600); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, File), append(data, '\n'), 0o600)
}

// Join registers the host named req.Name with the server of cl, using the
// join token, and saves the credentials it gets in dir. It makes the
// agent key pair and its certificate request (req.CSR); server and caPEM
// are those cl uses, kept with the credentials (the CA unless the answer
// names another).
func Join(ctx context.Context, cl *client.Client, token, dir, server string, caPEM []byte, req api.JoinRequest) (*Identity, error) {
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(pki.AgentCNPrefix+req.Name, []string{req.Address, req.Name})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	req.CSR = string(csrPEM)
	resp, err := cl.Join(ctx, token, req)
	if err != nil {
		return nil, fmt.Errorf("join %s as %s: %w", server, req.Name, err)
	}
	if resp.Token == "" || resp.Certificate == "" {
		return nil, fmt.Errorf("join %s: the answer has no token or certificate", server)
	}
	newCA := resp.CACert
	if newCA == "" {
		newCA = string(caPEM)
	}
	pair, err := tls.X509KeyPair([]byte(resp.Certificate), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("join: agent certificate from the server: %w", err)
	}
	c := Credentials{Server: server, Host: req.Name, Token: resp.Token, CACert: newCA}
	if err := Save(dir, c, keyPEM, []byte(resp.Certificate)); err != nil {
		return nil, fmt.Errorf("join: save credentials: %w", err)
	}
	return &Identity{Creds: c, Cert: pair}, nil
}
