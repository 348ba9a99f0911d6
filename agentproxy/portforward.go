package agentproxy

import (
	"context"
	"io"
	"net/url"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
)

// PortForward asks the agent to connect to port of the instance and to
// switch to api.PortForwardProtocol; it returns the stream once it has.
// The stream lives until it is closed or ctx ends.
func (c *Client) PortForward(ctx context.Context, t Target, port int) (io.ReadWriteCloser, error) {
	return c.switchTo(ctx, t, "portforward", url.Values{"port": {strconv.Itoa(port)}}, api.PortForwardProtocol)
}
