package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/pki"
)

// session holds the host's current credentials and what is made of them:
// the API client and the cluster CA that signs the servers' client
// certificates. A join replaces all of them at once. The zero session
// has no credentials.
type session struct {
	mu   sync.RWMutex
	id   *credentials.Identity
	cl   *client.Client
	pool *x509.CertPool
}

// set installs credentials: a new API client of server (default the one
// the credentials were made with) and the endpoint's certificate and
// client CA.
func (s *session) set(id *credentials.Identity, server string) error {
	if server == "" {
		server = id.Creds.Server
	}
	cl, err := client.New(client.Config{Server: server, Token: id.Creds.Token, CACert: []byte(id.Creds.CACert), UserAgent: userAgent()})
	if err != nil {
		return fmt.Errorf("API client: %w", err)
	}
	pool, err := pki.PoolFromPEM([]byte(id.Creds.CACert))
	if err != nil {
		return fmt.Errorf("cluster CA in credentials: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.id, s.cl, s.pool = id, cl, pool
	return nil
}

// Client returns the API client of the current credentials; nil before
// the host has any.
func (s *session) Client() *client.Client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cl
}

// identity returns the current credentials; nil before the host has any.
func (s *session) identity() *credentials.Identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.id
}

// TLSIdentity returns the agent certificate and the cluster CA, for the
// endpoint (endpoint.Identity).
func (s *session) TLSIdentity() (tls.Certificate, *x509.CertPool, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.id == nil || s.pool == nil {
		return tls.Certificate{}, nil, false
	}
	return s.id.Cert, s.pool, true
}
