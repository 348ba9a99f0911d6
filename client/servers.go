package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ouroboros-cloud/ouro/api"
)

// ClusterInfo returns where the cluster wants its API reached.
func (c *Client) ClusterInfo(ctx context.Context) (*api.ClusterInfo, error) {
	var info api.ClusterInfo
	_, err := c.Do(ctx, http.MethodGet, "/v1/cluster", nil, nil, &info)
	return &info, err
}

// ListServers returns the control plane's servers (cluster admins).
func (c *Client) ListServers(ctx context.Context) (*api.ServerList, error) {
	var l api.ServerList
	_, err := c.Do(ctx, http.MethodGet, "/v1/servers", nil, nil, &l)
	return &l, err
}

// RemoveServer takes a server out of the cluster (cluster admins).
func (c *Client) RemoveServer(ctx context.Context, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/servers/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// CreateServerJoinToken issues a single-use token that lets a new server
// join (cluster admins).
func (c *Client) CreateServerJoinToken(ctx context.Context, req api.ServerJoinTokenRequest) (*api.ServerJoinToken, error) {
	var t api.ServerJoinToken
	_, err := c.Do(ctx, http.MethodPost, "/v1/servers/jointokens", nil, req, &t)
	return &t, err
}
