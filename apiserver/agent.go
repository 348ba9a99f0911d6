package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Exec bounds (api.ExecRequest).
const (
	defaultExecTimeout = 60
	maxExecTimeout     = 3600
	// maxExecResponse bounds the agent's answer: 4 MiB per stream, base64.
	maxExecResponse = 12 << 20
)

// newAgentClient returns the client servers call agents with: it trusts
// only the cluster CA and presents the server's certificate.
func (s *Server) newAgentClient() *http.Client {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.cfg.CA != nil {
		tlsConf.RootCAs = s.cfg.CA.Pool()
	}
	if s.cfg.ClientCert != nil {
		tlsConf.Certificates = []tls.Certificate{*s.cfg.ClientCert}
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 0,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}
}

// placedInstance returns an instance the caller may act on with verb and
// the endpoint of the agent running it.
func (s *Server) placedInstance(r *http.Request, id *auth.Identity, verb auth.Verb) (*api.Instance, string, error) {
	project, name, err := pathNames(api.InstanceKind, r)
	if err != nil {
		return nil, "", err
	}
	obj, err := s.getObject(r, api.InstanceKind, project, name)
	if err != nil {
		return nil, "", err
	}
	if err := authorize(id, objectAttrs(verb, obj), "Instance", name); err != nil {
		return nil, "", err
	}
	in := obj.(*api.Instance)
	if in.Status.Host == "" {
		return nil, "", &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is not placed on a host yet", name), Hint: "wait until it is scheduled"}
	}
	hobj, err := s.getObject(r, api.HostKind, "", in.Status.Host)
	if err != nil {
		return nil, "", unavailable(fmt.Errorf("host %s of instance %s: %w", in.Status.Host, name, err))
	}
	ep := hobj.(*api.Host).Status.AgentEndpoint
	if ep == "" {
		return nil, "", unavailable(fmt.Errorf("host %s has no agent endpoint", in.Status.Host))
	}
	return in, ep, nil
}

func (s *Server) instanceLogs(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	q := r.URL.Query()
	follow := q.Get("follow")
	if follow != "" && follow != "true" && follow != "false" {
		return api.Invalid("follow", "use follow=true or false", "%q is not a boolean", follow)
	}
	tail := q.Get("tail")
	if tail != "" {
		if n, err := strconv.Atoi(tail); err != nil || n < 0 {
			return api.Invalid("tail", "use a whole number of lines", "tail %q is not valid", tail)
		}
	}
	in, ep, err := s.placedInstance(r, id, auth.VerbLogs)
	if err != nil {
		return err
	}
	u, err := url.JoinPath(ep, "v1", "instances", in.Metadata.UID, "logs")
	if err != nil {
		return unavailable(fmt.Errorf("agent endpoint %q: %w", ep, err))
	}
	u += "?" + url.Values{"follow": {follow}, "tail": {tail}}.Encode()
	ctx, cancel := s.streamContext(r)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("logs request: %w", err)
	}
	resp, err := s.agents.Do(req)
	if err != nil {
		return unavailable(fmt.Errorf("agent of host %s: %w", in.Status.Host, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentError(in.Status.Host, resp)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return nil // the client left
			}
			rc.Flush()
		}
		if rerr != nil {
			return nil // agent finished or the stream ended
		}
	}
}

func (s *Server) instanceExec(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	var req api.ExecRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Command) == 0 {
		return api.Invalid("command", "give the program and its arguments", "command is required")
	}
	if err := validateArgs("command", req.Command); err != nil {
		return err
	}
	if req.TimeoutSeconds < 0 || req.TimeoutSeconds > maxExecTimeout {
		return api.Invalid("timeoutSeconds", fmt.Sprintf("use 1 to %d, or 0 for %d", maxExecTimeout, defaultExecTimeout), "timeout %d is out of range", req.TimeoutSeconds)
	}
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = defaultExecTimeout
	}
	in, ep, err := s.placedInstance(r, id, auth.VerbExec)
	if err != nil {
		return err
	}
	if in.Status.Phase != api.PhaseRunning {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is %s, not Running", in.Metadata.Name, in.Status.Phase), Hint: "start it first"}
	}
	u, err := url.JoinPath(ep, "v1", "instances", in.Metadata.UID, "exec")
	if err != nil {
		return unavailable(fmt.Errorf("agent endpoint %q: %w", ep, err))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode exec request: %w", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(req.TimeoutSeconds)*time.Second+30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("exec request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := s.agents.Do(hreq)
	if err != nil {
		return unavailable(fmt.Errorf("agent of host %s: %w", in.Status.Host, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentError(in.Status.Host, resp)
	}
	var out api.ExecResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxExecResponse)).Decode(&out); err != nil {
		return unavailable(fmt.Errorf("agent of host %s answered exec badly: %w", in.Status.Host, err))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
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
