package apiserver

import (
	"net/http"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
)

// portForward tunnels one TCP connection to a port of a running instance:
// the caller's request asks to upgrade to api.PortForwardProtocol, the
// server asks the instance's agent the same, the agent connects to the
// instance's address from inside its network, and once it has, the
// server answers 101 and copies bytes both ways. It needs the rights of
// exec (whoever may run commands in an instance may reach its ports).
// Errors of the agent (nothing listening, no address yet) are passed on
// before anything is switched.
func (h *agentHandlers) portForward(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		return api.Invalid("port", "a TCP port, 1-65535", "port %q is not a TCP port", r.URL.Query().Get("port"))
	}
	if !upgrade.Requested(r, api.PortForwardProtocol) {
		return api.Invalid("", "use `ouro instance port-forward NAME LOCAL:REMOTE`, or send Connection: Upgrade and Upgrade: "+api.PortForwardProtocol+" over HTTP/1.1",
			"a port forward is a stream: the request must ask to upgrade")
	}
	_, target, err := h.runningInstance(r, id)
	if err != nil {
		return err
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	agent, err := h.agents.PortForward(ctx, target, port)
	if err != nil {
		return err
	}
	caller, err := upgrade.Accept(w, api.PortForwardProtocol)
	if err != nil {
		agent.Close()
		return api.Invalid("", "connect over HTTP/1.1 (`ouro instance port-forward` does)", "cannot switch this connection: %v", err)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.status, sw.wroteHeader = http.StatusSwitchingProtocols, true
	}
	upgrade.Splice(ctx, caller, agent)
	return nil
}
