package client

import (
	"context"
	"io"
	"net/url"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
)

// PortForward opens a TCP connection to port of a running instance,
// tunnelled through the API server and the instance's agent (POST
// .../instances/{name}/portforward, switched to api.PortForwardProtocol).
// The stream lives until it is closed or ctx ends.
func (c *Client) PortForward(ctx context.Context, project, name string, port int) (io.ReadWriteCloser, error) {
	return c.switchTo(ctx, project, name, "portforward", url.Values{"port": {strconv.Itoa(port)}}, api.PortForwardProtocol)
}
