package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v) // a failed write means the client left
}

// writeError answers with err as an api.Error body. Errors that are not
// API errors are logged and answered as 500 without their text.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if sw, ok := w.(*statusWriter); ok && sw.wroteHeader {
		// A streaming handler already answered; nothing more to say.
		s.log.Debug("error after response started", "path", r.URL.Path, "err", err)
		return
	}
	e := toAPIError(err)
	if e.Status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ouro"`)
	}
	writeJSON(w, e.Status, api.ErrorBody{Error: e})
}

// toAPIError maps store and context errors to API errors.
func toAPIError(err error) *api.Error {
	var e *api.Error
	if errors.As(err, &e) {
		if e.Status == 0 {
			c := *e
			c.Status = http.StatusInternalServerError
			return &c
		}
		return e
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "object not found"}
	case errors.Is(err, store.ErrAlreadyExists):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists, Field: "metadata.name",
			Message: "an object of this name already exists",
			Hint:    "choose another name or delete the existing object"}
	case errors.Is(err, store.ErrConflict):
		return api.Conflict("the object was changed since it was read")
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeIdempotencyMismatch,
			Message: "the Idempotency-Key was already used with a different request",
			Hint:    "use a new key for a new request"}
	case errors.Is(err, store.ErrCompacted):
		return gone()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "the request timed out or was cancelled"}
	case store.Transient(err):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
			Message: "the store is electing a leader", Hint: "retry in a moment"}
	}
	return &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "internal error",
		Hint: "the server log has the details"}
}

func gone() *api.Error {
	return &api.Error{Status: http.StatusGone, Code: api.CodeGone, Message: "the resourceVersion was compacted",
		Hint: "list again and watch from the list's resourceVersion"}
}

func unauthorized(msg string) *api.Error {
	return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: msg,
		Hint: "send Authorization: Bearer <token> with a valid token"}
}

// unavailable marks err as a 503 answer; the cause is logged, not sent.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable,
		Message: "a backend did not answer", Hint: "retry in a moment"}, err)
}
