// Package client is the Go client of the Ouroboros REST API (docs/api.md).
// The CLI, the agent and the tests use it; it imports only package api.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Config says how to reach and authenticate to a server.
type Config struct {
	// Server is the base URL, e.g. https://127.0.0.1:7443.
	Server string
	// Token is the bearer token.
	Token string
	// CACert is the PEM of the CA that signed the server certificate; nil
	// means the system roots.
	CACert []byte
	// HTTPClient overrides the transport (tests); Token and Server still apply.
	HTTPClient *http.Client
	// UserAgent is sent with each request.
	UserAgent string
}

// Client talks to one server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	ua    string
	hc    *http.Client
	// stream has no overall timeout, for watches and log streams.
	stream *http.Client
	// upgrade speaks only HTTP/1.1, without timeout: consoles switch
	// protocols, which HTTP/2 cannot.
	upgrade *http.Client
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Server, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want a URL like https://HOST:PORT", cfg.Server)
	}
	c := &Client{base: u, token: cfg.Token, ua: cfg.UserAgent}
	if c.ua == "" {
		c.ua = "ouro-client"
	}
	if cfg.HTTPClient != nil {
		c.hc, c.stream, c.upgrade = cfg.HTTPClient, cfg.HTTPClient, cfg.HTTPClient
		return c, nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CACert) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CACert) {
			return nil, errors.New("CA certificate: no PEM certificate found")
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	c.hc = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	c.stream = &http.Client{Transport: tr}
	h1 := tr.Clone()
	h1.ForceAttemptHTTP2 = false
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	h1.TLSClientConfig.NextProtos = nil
	c.upgrade = &http.Client{Transport: h1}
	return c, nil
}

// Server returns the base URL.
func (c *Client) Server() string { return c.base.String() }

// Path returns the URL path of a kind's collection (name "") or of one
// object. A namespaced kind with project "" addresses all projects.
func Path(kind *api.Kind, project, name string) string {
	var p string
	if kind.Namespaced && project != "" {
		p = "/v1/projects/" + url.PathEscape(project) + "/" + kind.Plural
	} else {
		p = "/v1/" + kind.Plural
	}
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// request is one call.
type request struct {
	method  string
	path    string
	query   url.Values
	body    []byte
	ctype   string
	header  http.Header
	reader  io.Reader // streamed body (blobs); not retried
	size    int64
	stream  bool // no overall timeout
	retries int  // extra attempts on transport errors and 502/503/504
}

func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + r.path
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	hc := c.hc
	if r.stream {
		hc = c.stream
	}
	var lastErr error
	for attempt := 0; attempt <= r.retries; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
		}
		var body io.Reader
		if r.reader != nil {
			body = r.reader
		} else if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
		}
		if r.reader != nil && r.size >= 0 {
			req.ContentLength = r.size
		}
		for k, v := range r.header {
			req.Header[k] = v
		}
		if r.ctype != "" {
			req.Header.Set("Content-Type", r.ctype)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.ua)
		if c.token != "" && req.Header.Get("Authorization") == "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			lastErr = fmt.Errorf("%s %s: %w", r.method, r.path, err)
			if ctx.Err() != nil || r.reader != nil {
				return nil, lastErr
			}
			continue
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		apiErr := decodeError(resp)
		resp.Body.Close()
		lastErr = apiErr
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if r.reader == nil {
				continue
			}
		}
		return nil, apiErr
	}
	return nil, lastErr
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body api.ErrorBody
	if err := json.Unmarshal(data, &body); err == nil && body.Error != nil {
		body.Error.Status = resp.StatusCode
		return body.Error
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &api.Error{Status: resp.StatusCode, Code: api.CodeInternal, Message: msg}
}

// Do sends a JSON request (in may be nil) and decodes a JSON answer into
// out (may be nil). It returns the HTTP status. GETs are retried on
// transport errors.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	return c.do(ctx, method, path, query, nil, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) (int, error) {
	r := request{method: method, path: path, query: query, header: header}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		r.body, r.ctype = b, "application/json"
	}
	if method == http.MethodGet || method == http.MethodHead || (header != nil && header.Get("Idempotency-Key") != "") {
		r.retries = 3
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return 0, err
			}
		}
		resp, err := c.send(ctx, r)
		if err != nil {
			return 0, err
		}
		if out == nil {
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		// The whole answer is read before decoding, so that an answer cut
		// by the connection (a read error, never a JSON one) can be told
		// apart and the request sent again: safe for reads and for creates
		// with an idempotency key, which the server answers with the
		// object made the first time.
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			if attempt < r.retries && ctx.Err() == nil {
				continue
			}
			return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
		}
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
		return resp.StatusCode, nil
	}
}

// backoff waits before the attempt-th retry (1, 2, ...) of a request, or
// until ctx ends.
func backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt*attempt) * 200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
