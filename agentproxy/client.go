// Package agentproxy calls the agents' endpoints for an instance's logs,
// exec, console and crash, over mutual TLS: it trusts only the cluster CA and
// presents the server's certificate.
//
// It only dials and speaks the agents' protocol. Who may read an
// instance's logs or run a command in it is decided by the API server
// before it calls the Client. Errors an agent answers with are passed on
// as *api.Error; an agent that cannot be reached, or answers badly, is an
// error wrapping a 503 *api.Error.
package agentproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// maxExecResponse bounds the agent's answer to exec: 4 MiB per stream,
// base64.
const maxExecResponse = 12 << 20

// Target is an instance on the agent that runs it.
type Target struct {
	// Endpoint is the agent's base URL (api.HostStatus.AgentEndpoint).
	Endpoint string
	// Host names the agent's host in errors.
	Host string
	// UID is the instance's metadata.uid, its name on the agent.
	UID string
}

// url returns the agent's URL of the instance's action.
func (t Target) url(action string) (string, error) {
	u, err := url.JoinPath(t.Endpoint, "v1", "instances", t.UID, action)
	if err != nil {
		return "", unavailable(fmt.Errorf("agent endpoint %q: %w", t.Endpoint, err))
	}
	return u, nil
}

// Client calls agents. It is safe for concurrent use.
type Client struct {
	http *http.Client
}

// New returns a Client that trusts only ca (the system roots if nil) and
// presents cert (none if nil).
func New(ca *pki.CA, cert *tls.Certificate) *Client {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != nil {
		tlsConf.RootCAs = ca.Pool()
	}
	if cert != nil {
		tlsConf.Certificates = []tls.Certificate{*cert}
	}
	return &Client{http: &http.Client{Transport: &http.Transport{
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 0,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}}
}

// Logs opens the instance's log stream: the last tail lines ("" for the
// agent's default), then, if follow is "true", what is written until ctx
// ends. The caller closes it.
func (c *Client) Logs(ctx context.Context, t Target, follow, tail string) (io.ReadCloser, error) {
	u, err := t.url("logs")
	if err != nil {
		return nil, err
	}
	u += "?" + url.Values{"follow": {follow}, "tail": {tail}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("logs request: %w", err)
	}
	resp, err := c.send(t, req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Exec runs req in the instance and returns what it answered. The agent
// gets req.TimeoutSeconds, and half a minute more to answer.
func (c *Client) Exec(ctx context.Context, t Target, req api.ExecRequest) (*api.ExecResponse, error) {
	u, err := t.url("exec")
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode exec request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Second+30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("exec request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.send(t, hreq, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out api.ExecResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxExecResponse)).Decode(&out); err != nil {
		return nil, unavailable(fmt.Errorf("agent of host %s answered exec badly: %w", t.Host, err))
	}
	return &out, nil
}

// Console asks the agent to switch to the instance's console
// (api.ConsoleProtocol) and returns the stream once it has. The stream
// lives until it is closed or ctx ends.
func (c *Client) Console(ctx context.Context, t Target) (io.ReadWriteCloser, error) {
	return c.switchTo(ctx, t, "console", nil, api.ConsoleProtocol)
}

// ExecTTY asks the agent to run argv on a terminal of rows and cols in
// the instance (api.ExecTTYProtocol) and returns the stream of ttyframe
// frames once it has. The stream lives until the command ends, it is
// closed, or ctx ends.
func (c *Client) ExecTTY(ctx context.Context, t Target, argv []string, rows, cols uint16) (io.ReadWriteCloser, error) {
	q := url.Values{"command": argv}
	ttyframe.SetSize(q, rows, cols)
	return c.switchTo(ctx, t, "exec", q, api.ExecTTYProtocol)
}

// switchTo posts action with query q to the agent, asking to upgrade to
// protocol, and returns the switched stream.
func (c *Client) switchTo(ctx context.Context, t Target, action string, q url.Values, protocol string) (io.ReadWriteCloser, error) {
	u, err := t.url(action)
	if err != nil {
		return nil, err
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s request: %w", action, err)
	}
	upgrade.SetHeaders(req, protocol)
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

// Crash asks the agent to kill the instance's main process with SIGKILL
// (a container's init, a VM's QEMU), as a crash would.
func (c *Client) Crash(ctx context.Context, t Target) error {
	u, err := t.url("crash")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return fmt.Errorf("crash request: %w", err)
	}
	resp, err := c.send(t, req, http.StatusNoContent)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// send sends req to the agent of t's host and returns its answer when it
// has status want. An agent that cannot be reached is unavailable; one
// that answers otherwise, as agentError says.
func (c *Client) send(t Target, req *http.Request, want int) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, unavailable(fmt.Errorf("agent of host %s: %w", t.Host, err))
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		return nil, agentError(t.Host, resp)
	}
	return resp, nil
}

// agentError passes on an agent's API error, or reports it unavailable.
func agentError(host string, resp *http.Response) error {
	var body api.ErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err == nil && body.Error != nil && resp.StatusCode < 500 {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	return unavailable(fmt.Errorf("agent of host %s answered %s", host, resp.Status))
}

// unavailable wraps err as a 503: the agent did not answer as it should.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
		Message: "a backend did not answer", Hint: "retry in a moment"}, err)
}
