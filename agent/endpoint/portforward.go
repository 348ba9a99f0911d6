package endpoint

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/probe"
)

// portForwardDialTimeout bounds the agent's connect to the instance.
const portForwardDialTimeout = 10 * time.Second

// Reach says how the host reaches an instance over its network: the
// network namespace whose sockets reach it (a router namespace) and its
// address there.
type Reach interface {
	ProbeTarget(inst *api.Instance) (nsPath, ip string, ok bool)
}

// handlePortForward connects to a port of a running instance from inside
// its network and, once connected, switches to api.PortForwardProtocol
// and copies bytes both ways. It is how a user reaches an instance that
// has no public address (`ouro instance port-forward`, `ouro instance
// ssh`): the agent dials only the instance's own address, so the tunnel
// reaches nothing else on its network or on the host.
func (s *Server) handlePortForward(w http.ResponseWriter, r *http.Request) {
	uid, inst, d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		writeError(w, api.Invalid("port", "a TCP port, 1-65535", "port %q is not a TCP port", r.URL.Query().Get("port")))
		return
	}
	if !upgrade.Requested(r, api.PortForwardProtocol) {
		writeError(w, api.Invalid("", "send Connection: Upgrade and Upgrade: "+api.PortForwardProtocol, "a port forward is a stream: the request must ask to upgrade"))
		return
	}
	if apiErr := notRunning(r.Context(), d, inst, uid); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if s.cfg.Reach == nil {
		writeError(w, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
			Message: "this agent cannot reach instances' networks"})
		return
	}
	nsPath, ip, ok := s.cfg.Reach.ProbeTarget(inst)
	if !ok {
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %s has no address on a network set up on its host yet", key(inst)),
			Hint:    "wait until it is Running with an address, then retry"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), portForwardDialTimeout)
	conn, err := probe.Dialer(nsPath, portForwardDialTimeout)(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	cancel()
	if err != nil {
		// 409, not a 5xx: the server passes on an agent's 4xx with its
		// message, and the instance's state (nothing accepting) is why.
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("connect to port %d of %s: %v", port, key(inst), err),
			Hint:    "is something listening on that port in the instance, and do its security groups allow it from its own network?"})
		return
	}
	caller, err := upgrade.Accept(w, api.PortForwardProtocol)
	if err != nil {
		conn.Close()
		s.cfg.Logger.Warn("port forward", "instance", key(inst), "err", err)
		return
	}
	s.cfg.Logger.Debug("port forward opened", "instance", key(inst), "port", port)
	upgrade.Splice(r.Context(), caller, conn)
	s.cfg.Logger.Debug("port forward closed", "instance", key(inst), "port", port)
}
