package apiserver

import (
	"context"
	"net/http"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Servers manages the control plane's servers (package membership):
// their list, removal, and the join of new ones with a server join token.
type Servers interface {
	// Info says where clients should reach the API.
	Info(ctx context.Context) api.ClusterInfo
	// List returns the servers.
	List(ctx context.Context) ([]api.Server, error)
	// Remove takes a server out of the cluster.
	Remove(ctx context.Context, name string) error
	// IssueJoinToken makes a single-use server join token (0: default TTL).
	IssueJoinToken(ctx context.Context, ttl time.Duration) (*api.ServerJoinToken, error)
	// Join admits a new server holding the join token secret wire.
	Join(ctx context.Context, wire string, req api.ServerJoinRequest) (*api.ServerJoinResponse, error)
}

// serverRoutes adds the routes of /v1/cluster and /v1/servers.
func (s *Server) serverRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/cluster", s.authed(s.clusterInfo))
	mux.Handle("GET /v1/servers", s.authed(s.admin(s.listServers)))
	mux.Handle("DELETE /v1/servers/{name}", s.authed(s.admin(s.removeServer)))
	mux.Handle("POST /v1/servers/jointokens", s.authed(s.admin(s.createServerJoinToken)))
	mux.HandleFunc("POST /v1/servers/join", s.joinServer)
}

// admin lets only cluster admins through, and only to servers that manage
// servers.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
		if !id.ClusterAdmin {
			return forbidden("only cluster admins manage servers")
		}
		if s.cfg.Servers == nil {
			return noServers()
		}
		return h(w, r, id)
	}
}

func noServers() error {
	return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
		Message: "this server does not manage the control plane's servers",
		Hint:    "servers on an external etcd (--etcd-endpoints) are managed with etcd's own tools"}
}

// clusterInfo serves GET /v1/cluster to any authenticated caller.
func (s *Server) clusterInfo(w http.ResponseWriter, r *http.Request, _ *auth.Identity) error {
	var info api.ClusterInfo
	if s.cfg.Servers != nil {
		info = s.cfg.Servers.Info(r.Context())
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request, _ *auth.Identity) error {
	items, err := s.cfg.Servers.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ServerList{Items: items})
	return nil
}

func (s *Server) removeServer(w http.ResponseWriter, r *http.Request, _ *auth.Identity) error {
	name := r.PathValue("name")
	if e := api.ValidateName("name", name); e != nil {
		return e
	}
	if err := s.cfg.Servers.Remove(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createServerJoinToken(w http.ResponseWriter, r *http.Request, _ *auth.Identity) error {
	var req api.ServerJoinTokenRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return api.Invalid("ttl", `use a Go duration such as "1h"`, "ttl %q is not valid", truncate(req.TTL, 40))
		}
		ttl = d
	}
	tok, err := s.cfg.Servers.IssueJoinToken(r.Context(), ttl)
	if err != nil {
		return err
	}
	s.log.Info("server join token issued", "expiresAt", tok.ExpiresAt)
	writeJSON(w, http.StatusCreated, tok)
	return nil
}

// joinServer serves POST /v1/servers/join; its bearer is the secret of a
// server join token, not an API token.
func (s *Server) joinServer(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		if s.cfg.Servers == nil {
			return noServers()
		}
		wire, ok := bearer(r)
		if !ok {
			return unauthorized("missing server join token")
		}
		var req api.ServerJoinRequest
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		resp, err := s.cfg.Servers.Join(r.Context(), wire, req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}
