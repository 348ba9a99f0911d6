package agentproxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
)

// PortForward asks the agent to connect to port of the instance and to
// switch to api.PortForwardProtocol; it returns the stream once it has.
// The stream lives until it is closed or ctx ends.
func (c *Client) PortForward(ctx context.Context, t Target, port int) (io.ReadWriteCloser, error) {
	u, err := t.url("portforward")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"?port="+strconv.Itoa(port), nil)
	if err != nil {
		return nil, fmt.Errorf("port forward request: %w", err)
	}
	upgrade.SetHeaders(req, api.PortForwardProtocol)
	resp, err := c.send(t, req, http.StatusSwitchingProtocols)
	if err != nil {
		return nil, err
	}
	stream, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, unavailable(fmt.Errorf("agent of host %s switched protocols without a stream", t.Host))
	}
	return stream, nil
}
