package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/agentproxy"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/record"
)

// Exec bounds (api.ExecRequest).
const (
	defaultExecTimeout = 60
	maxExecTimeout     = 3600
)

// agentHandlers serve an instance's logs, exec and console by calling the
// agent that runs it.
type agentHandlers struct {
	agents *agentproxy.Client
	// getObject reads an object (Server.getObject).
	getObject func(r *http.Request, k *api.Kind, project, name string) (api.Object, error)
	// streamContext ends a stream with the client or the server
	// (Server.streamContext).
	streamContext func(r *http.Request) (context.Context, context.CancelFunc)
	// events records crashes asked for (Server.events).
	events record.Sink
}

// placedInstance returns an instance the caller may act on with verb and
// where the agent running it answers for it. It is where the logs, exec
// and console handlers authorize the caller.
func (h *agentHandlers) placedInstance(r *http.Request, id *auth.Identity, verb auth.Verb) (*api.Instance, agentproxy.Target, error) {
	var none agentproxy.Target
	project, name, err := pathNames(api.InstanceKind, r)
	if err != nil {
		return nil, none, err
	}
	obj, err := h.getObject(r, api.InstanceKind, project, name)
	if err != nil {
		return nil, none, err
	}
	if err := authorize(id, objectAttrs(verb, obj), "Instance", name); err != nil {
		return nil, none, err
	}
	in := obj.(*api.Instance)
	if in.Status.Host == "" {
		return nil, none, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is not placed on a host yet", name), Hint: "wait until it is scheduled"}
	}
	hobj, err := h.getObject(r, api.HostKind, "", in.Status.Host)
	if err != nil {
		return nil, none, unavailable(fmt.Errorf("host %s of instance %s: %w", in.Status.Host, name, err))
	}
	ep := hobj.(*api.Host).Status.AgentEndpoint
	if ep == "" {
		return nil, none, unavailable(fmt.Errorf("host %s has no agent endpoint", in.Status.Host))
	}
	return in, agentproxy.Target{Endpoint: ep, Host: in.Status.Host, UID: in.Metadata.UID}, nil
}

// logs streams an instance's log from its agent: the last tail lines,
// then, with follow=true, what comes until either side leaves.
func (h *agentHandlers) logs(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
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
	_, target, err := h.placedInstance(r, id, auth.VerbLogs)
	if err != nil {
		return err
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	logs, err := h.agents.Logs(ctx, target, follow, tail)
	if err != nil {
		return err
	}
	defer logs.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := logs.Read(buf)
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

// exec runs a command in a running instance through its agent and
// answers what it returned; on a terminal when the request asks to
// upgrade to api.ExecTTYProtocol (execTTY).
func (h *agentHandlers) exec(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if upgrade.Requested(r, api.ExecTTYProtocol) {
		return h.execTTY(w, r, id)
	}
	var req api.ExecRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Command) == 0 {
		return api.Invalid("command", "give the program and its arguments", "command is required")
	}
	if err := admission.ValidateArgs("command", req.Command); err != nil {
		return err
	}
	if req.TimeoutSeconds < 0 || req.TimeoutSeconds > maxExecTimeout {
		return api.Invalid("timeoutSeconds", fmt.Sprintf("use 1 to %d, or 0 for %d", maxExecTimeout, defaultExecTimeout), "timeout %d is out of range", req.TimeoutSeconds)
	}
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = defaultExecTimeout
	}
	in, target, err := h.placedInstance(r, id, auth.VerbExec)
	if err != nil {
		return err
	}
	if in.Status.Phase != api.PhaseRunning {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is %s, not Running", in.Metadata.Name, in.Status.Phase), Hint: "start it first"}
	}
	out, err := h.agents.Exec(r.Context(), target, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// crash kills a running instance's main process through its agent, as a
// crash would, so the agent's restart with back-off runs where people can
// watch it. It is a teaching action for cluster admins only.
func (h *agentHandlers) crash(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	in, target, err := h.placedInstance(r, id, auth.VerbCrash)
	if err != nil {
		return err
	}
	if in.Status.Phase != api.PhaseRunning {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is %s, not Running", in.Metadata.Name, in.Status.Phase), Hint: "start it first"}
	}
	if err := h.agents.Crash(r.Context(), target); err != nil {
		return err
	}
	h.events.Event(r.Context(), in, api.EventWarning, "CrashRequested",
		"%s killed the main process on host %s (a teaching action); the agent restarts it as after any crash", id, in.Status.Host)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
