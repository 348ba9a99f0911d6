package apiserver

import (
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
)

// console proxies an instance's interactive console: the caller's
// request asks to upgrade to api.ConsoleProtocol, the server asks the
// instance's agent the same, and once the agent has switched, the server
// answers 101 and copies bytes both ways until either side closes. The
// console needs the rights of exec. Errors of the agent (an instance
// whose driver has no console, one that is not running) are passed on
// before anything is switched.
func (h *agentHandlers) console(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if !upgrade.Requested(r, api.ConsoleProtocol) {
		return api.Invalid("", "use `ouro instance console NAME`, or send Connection: Upgrade and Upgrade: "+api.ConsoleProtocol+" over HTTP/1.1",
			"the console is a stream: the request must ask to upgrade")
	}
	_, target, err := h.runningInstance(r, id)
	if err != nil {
		return err
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	agent, err := h.agents.Console(ctx, target)
	if err != nil {
		return err
	}
	caller, err := upgrade.Accept(w, api.ConsoleProtocol)
	if err != nil {
		agent.Close()
		return api.Invalid("", "connect over HTTP/1.1 (`ouro instance console` does)", "cannot switch this connection: %v", err)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.status, sw.wroteHeader = http.StatusSwitchingProtocols, true
	}
	upgrade.Splice(ctx, caller, agent)
	return nil
}
