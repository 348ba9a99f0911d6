package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
)

// PortForward opens a TCP connection to port of a running instance,
// tunnelled through the API server and the instance's agent (POST
// .../instances/{name}/portforward, switched to api.PortForwardProtocol).
// The stream lives until it is closed or ctx ends.
func (c *Client) PortForward(ctx context.Context, project, name string, port int) (io.ReadWriteCloser, error) {
	return c.switchTo(ctx, Path(api.InstanceKind, project, name)+"/portforward",
		url.Values{"port": {strconv.Itoa(port)}}, api.PortForwardProtocol, "the port forward")
}

// switchTo POSTs to path asking to upgrade to protocol and returns the
// switched connection; what names the stream in errors.
func (c *Client) switchTo(ctx context.Context, path string, query url.Values, protocol, what string) (io.ReadWriteCloser, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol)
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.upgrade.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", u.Path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil, fmt.Errorf("POST %s: the server answered %s instead of switching to %s", u.Path, resp.Status, what)
		}
		return nil, decodeError(resp)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("POST %s: the switched connection is not writable", u.Path)
	}
	return rwc, nil
}
