package apiserver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/store"
)

// Heartbeat lease bounds.
const (
	DefaultHeartbeatTTL = 6 * time.Second
	minHeartbeatTTL     = 2 * time.Second
	maxHeartbeatTTL     = 60 * time.Second
)

// join serves POST /v1/hosts/join. Its bearer is a join token, not an API
// token. Joining again under the same name refreshes the host's status,
// issues new credentials and revokes the old ones; every step is safe to
// repeat after a crash.
func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	if err := s.doJoin(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) doJoin(w http.ResponseWriter, r *http.Request) error {
	wire, ok := bearer(r)
	if !ok {
		return unauthorized("missing join token")
	}
	jt, err := s.authn.AuthenticateJoin(r.Context(), wire)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return unauthorized("the join token is not valid or has expired")
	}
	if err != nil {
		return unavailable(err)
	}
	var req api.JoinRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	endpointHost, err := validateJoin(&req)
	if err != nil {
		return err
	}
	if s.cfg.CA == nil {
		return unavailable(errors.New("the server has no CA to sign agent certificates"))
	}
	certPEM, err := s.cfg.CA.SignCSR([]byte(req.CSR), sanNames(req.Address, req.Name, endpointHost), req.Name)
	if err != nil {
		return api.Invalid("csr", "send a PEM CERTIFICATE REQUEST made with the agent's key", "%v", err)
	}
	// A joining host is alive: mark it so before the host controller sees
	// the Host, or it would flap to NotReady until the first heartbeat.
	if err := s.store.Presence().Renew(r.Context(), req.Name, DefaultHeartbeatTTL); err != nil {
		return unavailable(err)
	}
	host, err := s.upsertJoinedHost(r, &req)
	if err != nil {
		return err
	}
	tok := &api.Token{Spec: api.TokenSpec{Host: req.Name,
		Description: fmt.Sprintf("agent credential of host %s, joined with join token %s", req.Name, jt.Metadata.Name)}}
	hostWire, err := s.issueToken(r, tok)
	if err != nil {
		return err
	}
	newName := tok.Metadata.Name
	if err := s.deleteTokens(r.Context(), func(t *api.Token) bool { return t.Spec.Host == req.Name && t.Metadata.Name != newName }); err != nil {
		return err
	}
	s.log.Info("host joined", "host", req.Name, "address", req.Address, "joinToken", jt.Metadata.Name)
	writeJSON(w, http.StatusOK, api.JoinResponse{
		Host:        *prepareOut(host).(*api.Host),
		Token:       hostWire,
		CACert:      string(s.cfg.CA.CertPEM()),
		Certificate: string(certPEM),
	})
	return nil
}

func sanNames(names ...string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// validateJoin checks a join request and returns the host name of its
// agent endpoint.
func validateJoin(req *api.JoinRequest) (string, error) {
	if e := api.ValidateName("name", req.Name); e != nil {
		return "", e
	}
	if net.ParseIP(req.Address) == nil {
		return "", api.Invalid("address", "use the host's underlay IP address", "address %q is not an IP address", truncate(req.Address, 80))
	}
	u, err := url.Parse(req.AgentEndpoint)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", api.Invalid("agentEndpoint", "use https://host:port", "agent endpoint %q is not valid", truncate(req.AgentEndpoint, 80))
	}
	if _, err := pki.ParseCSR([]byte(req.CSR)); err != nil {
		return "", api.Invalid("csr", "send a PEM CERTIFICATE REQUEST made with the agent's key", "%v", err)
	}
	c := req.Capacity
	if c.VCPUs < 0 || c.MemoryMiB < 0 || c.DiskGiB < 0 {
		return "", api.Invalid("capacity", "report what the host offers", "capacity cannot be negative")
	}
	if !admission.KnownArchitecture(req.Architecture) {
		return "", api.Invalid("architecture", "use the Go architecture name, such as amd64", "architecture %q is not known", req.Architecture)
	}
	for i, d := range req.Drivers {
		if e := api.ValidateName(fmt.Sprintf("drivers[%d]", i), d); e != nil {
			return "", e
		}
	}
	if len(req.AgentVersion) > 64 || !printable(req.AgentVersion) && req.AgentVersion != "" {
		return "", api.Invalid("agentVersion", "use at most 64 printable characters", "agent version is not valid")
	}
	if e := api.ValidateLabels("labels", req.Labels); e != nil {
		return "", e
	}
	if err := admission.ValidateKeys("taints", req.Taints); err != nil {
		return "", err
	}
	return u.Hostname(), nil
}

// upsertJoinedHost creates the Host or refreshes its status from the
// request; the operator's spec and labels are kept, the agent's labels
// added.
func (s *Server) upsertJoinedHost(r *http.Request, req *api.JoinRequest) (*api.Host, error) {
	status := func(old api.HostStatus) api.HostStatus {
		return api.HostStatus{
			Phase:         api.HostReady,
			Address:       req.Address,
			AgentEndpoint: req.AgentEndpoint,
			Capacity:      req.Capacity,
			Allocated:     old.Allocated,
			Architecture:  req.Architecture,
			Drivers:       req.Drivers,
			AgentVersion:  req.AgentVersion,
			Conditions:    old.Conditions,
		}
	}
	for range maxConflictRetries {
		var h api.Host
		err := s.store.Get(r.Context(), api.HostKind, "", req.Name, &h)
		if errors.Is(err, store.ErrNotFound) {
			h = api.Host{
				Metadata: api.ObjectMeta{Name: req.Name, Labels: req.Labels},
				Spec:     api.HostSpec{Taints: req.Taints},
				Status:   status(api.HostStatus{}),
			}
			_, err := s.store.Create(r.Context(), &h, store.CreateOptions{})
			if errors.Is(err, store.ErrAlreadyExists) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create host %s: %w", req.Name, err)
			}
			return &h, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get host %s: %w", req.Name, err)
		}
		for k, v := range req.Labels {
			if h.Metadata.Labels == nil {
				h.Metadata.Labels = map[string]string{}
			}
			h.Metadata.Labels[k] = v
		}
		h.Status = status(h.Status)
		err = s.store.Update(r.Context(), &h)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("update host %s: %w", req.Name, err)
		}
		return &h, nil
	}
	return nil, api.Conflict("host %q changes too fast", req.Name)
}

// heartbeat serves POST /v1/hosts/{name}/heartbeat: it renews the host's
// presence key for the asked TTL, bounded to 2-60 s.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	_, name, err := pathNames(api.HostKind, r)
	if err != nil {
		return err
	}
	if err := authorize(id, auth.Attributes{Verb: auth.VerbHeartbeat, Resource: api.HostKind.Plural, Name: name}, "Host", name); err != nil {
		return err
	}
	var req api.HeartbeatRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	ttl := DefaultHeartbeatTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return api.Invalid("ttl", `use a Go duration such as "6s"`, "ttl %q is not valid", truncate(req.TTL, 40))
		}
		ttl = min(max(d, minHeartbeatTTL), maxHeartbeatTTL)
	}
	if _, err := s.getObject(r, api.HostKind, "", name); err != nil {
		return err
	}
	if err := s.store.Presence().Renew(r.Context(), name, ttl); err != nil {
		return fmt.Errorf("renew presence of %s: %w", name, err)
	}
	noteHeartbeat(r, name)
	writeJSON(w, http.StatusOK, api.HeartbeatRequest{TTL: ttl.String()})
	return nil
}
