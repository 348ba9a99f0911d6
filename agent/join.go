package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/ouroboros-cloud/ouro/agent/credentials"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
)

// join registers the host with the join token and stores the credentials
// it gets. The server URL and the CA are the configured ones, else those
// of the current credentials.
func (a *Agent) join(ctx context.Context, h hostFacts) (*credentials.Identity, error) {
	if a.cfg.JoinToken == "" {
		return nil, fmt.Errorf("no usable credentials for host %s in %s and no join token: create a join token on a server and pass it to the agent", h.name, a.cfg.DataDir)
	}
	server, caPEM := a.cfg.Server, a.cfg.CACert
	if cur := a.sess.identity(); cur != nil {
		if server == "" {
			server = cur.Creds.Server
		}
		if len(caPEM) == 0 {
			caPEM = []byte(cur.Creds.CACert)
		}
	}
	if server == "" {
		return nil, errors.New("join: no server URL configured")
	}
	cl, err := client.New(client.Config{Server: server, CACert: caPEM, UserAgent: userAgent()})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	id, err := credentials.Join(ctx, cl, a.cfg.JoinToken, a.cfg.DataDir, server, caPEM, api.JoinRequest{
		Name:          h.name,
		Address:       h.address,
		AgentEndpoint: h.endpoint,
		Capacity:      h.capacity,
		Architecture:  h.arch,
		Drivers:       h.drivers,
		AgentVersion:  Version,
		Labels:        a.cfg.Labels,
		Taints:        a.cfg.Taints,
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("joined", "server", server, "host", h.name)
	return id, nil
}
