package endpoint

import (
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
)

// handleConsole connects the caller to the interactive console of a
// running instance whose driver has one (a virtual machine's serial
// port). The request asks to upgrade to api.ConsoleProtocol; after the 101
// answer the connection carries the console's bytes both ways until
// either side closes it or the agent stops. Closing detaches: the
// instance goes on running.
func (s *Server) handleConsole(w http.ResponseWriter, r *http.Request) {
	uid := r.PathValue("uid")
	inst, d, apiErr := s.cfg.Instances.Lookup(uid)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	cons, ok := d.(driver.Consoler)
	if !ok {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalid,
			Message: fmt.Sprintf("instance's driver (%s) has no console; use exec", d.Name()),
			Hint:    "run a shell with `ouro instance exec NAME -- sh`; `ouro instance console-log NAME` prints its output"})
		return
	}
	if !upgrade.Requested(r, api.ConsoleProtocol) {
		writeError(w, api.Invalid("", "send Connection: Upgrade and Upgrade: "+api.ConsoleProtocol, "the console is a stream: the request must ask to upgrade"))
		return
	}
	st, err := d.Inspect(r.Context(), uid)
	if err != nil || st.State != driver.StateRunning {
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %s is not running", key(inst)), Hint: "start it first"})
		return
	}
	console, err := cons.Console(r.Context(), uid)
	if err != nil {
		writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal,
			Message: fmt.Sprintf("connect to the console of %s: %v", key(inst), err)})
		return
	}
	caller, err := upgrade.Accept(w, api.ConsoleProtocol)
	if err != nil {
		console.Close()
		s.cfg.Logger.Warn("console", "instance", key(inst), "err", err)
		return
	}
	s.cfg.Logger.Info("console attached", "instance", key(inst))
	upgrade.Splice(r.Context(), caller, console)
	s.cfg.Logger.Info("console detached", "instance", key(inst))
}
