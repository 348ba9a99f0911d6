package endpoint

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

// handleCrash kills a running instance's main process with SIGKILL, as a
// crash would, so the agent's usual path for a crashed instance (restart
// with back-off, by the restart policy) runs. The API server allows it to
// cluster admins only: it is a teaching action.
func (s *Server) handleCrash(w http.ResponseWriter, r *http.Request) {
	uid, inst, d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	k, ok := d.(driver.Killer)
	if !ok {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalid,
			Message: fmt.Sprintf("instance's driver (%s) cannot crash instances", d.Name()),
			Hint:    "stop the instance instead"})
		return
	}
	err := k.Kill(r.Context(), uid)
	switch {
	case errors.Is(err, driver.ErrNotRunning), errors.Is(err, driver.ErrNotFound):
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %s is not running", key(inst)), Hint: "start it first"})
		return
	case err != nil:
		writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal,
			Message: fmt.Sprintf("crash %s: %v", key(inst), err)})
		return
	}
	s.cfg.Logger.Warn("instance crashed on request", "instance", key(inst))
	w.WriteHeader(http.StatusNoContent)
}
