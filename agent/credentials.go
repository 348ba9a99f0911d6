package agent

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

// Files the agent keeps in its data directory. credentials.json is written
// last: it is the commit point of a join.
const (
	CredentialsFile = "credentials.json"
	KeyFile         = "agent.key"
	CertFile        = "agent.crt"
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

// identity is a host's credentials and its agent certificate.
type identity struct {
	creds Credentials
	cert  tls.Certificate
}

// loadIdentity reads the credentials and the agent key pair from dir. It
// returns (nil, nil) when any of the files is missing or the key pair is
// unusable (a join was interrupted): the caller joins again.
func loadIdentity(dir string) (*identity, error) {
	data, err := os.ReadFile(filepath.Join(dir, CredentialsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, CredentialsFile), err)
	}
	if c.Host == "" || c.Token == "" {
		return nil, fmt.Errorf("%s: host or token missing", filepath.Join(dir, CredentialsFile))
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
	return &identity{creds: c, cert: pair}, nil
}

// saveIdentity writes the key pair, then the credentials, each atomically.
func saveIdentity(dir string, c Credentials, keyPEM, certPEM []byte) error {
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
	return atomicfile.WriteFile(filepath.Join(dir, CredentialsFile), append(data, '\n'), 0o600)
}

// join registers the host with the join token and stores the credentials
// it gets.
func (a *Agent) join(ctx context.Context, h hostFacts) (*identity, error) {
	if a.cfg.JoinToken == "" {
		return nil, fmt.Errorf("no usable credentials for host %s in %s and no join token: create a join token on a server and pass it to the agent", h.name, a.cfg.DataDir)
	}
	server := a.cfg.Server
	if server == "" {
		a.mu.RLock()
		if a.id != nil {
			server = a.id.creds.Server
		}
		a.mu.RUnlock()
	}
	if server == "" {
		return nil, errors.New("join: no server URL configured")
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(pki.AgentCNPrefix+h.name, []string{h.address, h.name})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	caPEM := a.cfg.CACert
	if len(caPEM) == 0 {
		a.mu.RLock()
		if a.id != nil {
			caPEM = []byte(a.id.creds.CACert)
		}
		a.mu.RUnlock()
	}
	cl, err := a.newClient(client.Config{Server: server, CACert: caPEM, UserAgent: userAgent()})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	resp, err := cl.Join(ctx, a.cfg.JoinToken, api.JoinRequest{
		Name:          h.name,
		Address:       h.address,
		AgentEndpoint: h.endpoint,
		CSR:           string(csrPEM),
		Capacity:      h.capacity,
		Architecture:  h.arch,
		Drivers:       h.drivers,
		AgentVersion:  Version,
		Labels:        a.cfg.Labels,
		Taints:        a.cfg.Taints,
	})
	if err != nil {
		return nil, fmt.Errorf("join %s as %s: %w", server, h.name, err)
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
	c := Credentials{Server: server, Host: h.name, Token: resp.Token, CACert: newCA}
	if err := saveIdentity(a.cfg.DataDir, c, keyPEM, []byte(resp.Certificate)); err != nil {
		return nil, fmt.Errorf("join: save credentials: %w", err)
	}
	a.log.Info("joined", "server", server, "host", h.name)
	return &identity{creds: c, cert: pair}, nil
}
