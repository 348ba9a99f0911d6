package ec2

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/accesskey"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/sigv4"
	"github.com/ouroboros-cloud/ouro/store"
)

// Objects writes objects as the REST API does, with its authorization,
// admission and idempotency: the API server implements it
// (apiserver.Server's CreateObject, UpdateObject, DeleteObject and
// InstanceAction).
type Objects interface {
	CreateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object, key string) (existed bool, err error)
	UpdateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object) error
	DeleteObject(ctx context.Context, st store.Interface, id *auth.Identity, k *api.Kind, project, name string) (gone bool, err error)
	InstanceAction(ctx context.Context, id *auth.Identity, verb auth.Verb, project, name string) (*api.Instance, error)
}

// Lister lists objects from memory, as one consistent snapshot of the
// store (watchcache.Cache). What it returns is shared: never modified.
type Lister interface {
	Objects(ctx context.Context, k *api.Kind, project string) ([]api.Object, error)
}

// Config configures a Handler.
type Config struct {
	// Store is read for lists and access keys; writes use it through
	// Objects.
	Store store.Interface
	// Objects creates, updates and deletes.
	Objects Objects
	// Sealer opens access keys' secrets.
	Sealer *accesskey.Sealer
	// Region is the one region DescribeRegions names; default
	// DefaultRegion. Requests may be signed for any region.
	Region string
	// Logger receives server faults; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Lists, when set, answers DescribeInstances' lists and the objects
	// answers refer to from memory (the API server's list cache).
	Lists Lister
	// Life, when set, lets the handler keep access keys and users in
	// memory, fed by watches that end with it (credcache.go); without it
	// every request reads both from the store.
	Life context.Context
}

// DefaultRegion is the region's name when Config.Region is empty.
const DefaultRegion = "ouro-1"

// Handler serves EC2 and STS Query requests.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	verifier *sigv4.Verifier
	creds    *credentials
	ids      *idIndex
	memory   *memory
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, creds: newCredentials(cfg.Store, cfg.Life), ids: newIDIndex(),
		memory: newMemory(cfg.Store, cfg.Life)}
	h.verifier = &sigv4.Verifier{Services: []string{"ec2", "sts"}, Now: cfg.Now}
	return h
}

// Changed tells the handler that obj, an access key or a user, was
// written (deleted, when gone) on this server, so that the next request
// signed with the key reads it from the store until the handler's cache
// shows the change.
func (h *Handler) Changed(obj api.Object, gone bool) {
	switch obj.GetKind() {
	case api.AccessKeyKind, api.UserKind:
		h.creds.changed(obj, gone)
	}
}

// IsQueryRequest reports whether r is an EC2 or STS Query request (a
// form POST signed with SigV4), which shares the path "/" with the web
// console.
func IsQueryRequest(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/x-www-form-urlencoded" &&
		strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-")
}

// Call is one request being served.
type Call struct {
	ctx context.Context
	h   *Handler
	// ID is the caller, with the key's user's role in Project alone.
	ID *auth.Identity
	// Project is the key's project, the "account".
	Project string
	// Key is the access key used.
	Key *api.AccessKey
	// Params are the request's parameters.
	Params Params
	// RequestID names the request in answers and logs.
	RequestID string
	// Region is the region the request was signed for.
	Region string
}

// Context returns the request's context.
func (c *Call) Context() context.Context { return c.ctx }

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	s := hex.EncodeToString(b)
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// ServeHTTP serves one Query request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	w.Header().Set("x-amzn-RequestId", reqID)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, nil, reqID, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeInvalidParameterValue,
			Message: fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes)})
		return
	}
	p, perr := parseForm(string(body))
	var svc *service
	if perr == nil {
		switch p["Version"] {
		case STSVersion:
			svc = stsAPI
		default:
			svc = ec2API
		}
	}
	c, err := h.authenticate(r, body)
	if err != nil {
		writeError(w, svc, reqID, h.fault(err, reqID))
		return
	}
	if perr != nil {
		writeError(w, svc, reqID, h.fault(perr, reqID))
		return
	}
	c.ctx, c.Params, c.RequestID = r.Context(), p, reqID
	name := p["Action"]
	if name == "" {
		writeError(w, svc, reqID, missing("Action"))
		return
	}
	if v := p["Version"]; v != svc.version {
		writeError(w, svc, reqID, Errorf("InvalidAction", "The version %q is not served; use %s (EC2) or %s (STS)", clip(v), EC2Version, STSVersion))
		return
	}
	a, ok := svc.actions[name]
	if !ok {
		writeError(w, svc, reqID, Errorf(CodeInvalidAction, "The action %s is not valid for this web service.", clip(name)))
		return
	}
	if err := p.check(a.Params); err != nil {
		writeError(w, svc, reqID, h.fault(err, reqID))
		return
	}
	out, err := a.Run(c)
	if err != nil {
		writeError(w, svc, reqID, h.fault(err, reqID))
		return
	}
	if s, ok := out.(requestIDSetter); ok {
		s.setRequestID(reqID)
	}
	writeXML(w, http.StatusOK, name+"Response", svc.namespace, out)
}

// fault turns an error into an answer; what is not a client fault is
// logged and answered 500 without detail.
func (h *Handler) fault(err error, reqID string) *Error {
	var e *Error
	if errors.As(fromAPI(err, nil), &e) {
		if e.Status >= 500 {
			h.log.Error("ec2 request", "request", reqID, "err", err)
		}
		return e
	}
	var se *sigv4.Error
	if errors.As(err, &se) {
		status := http.StatusForbidden
		switch se.Code {
		case sigv4.CodeAuthFailure, sigv4.CodeMissingAuthenticationToken:
			status = http.StatusUnauthorized
		case sigv4.CodeIncompleteSignature, sigv4.CodeRequestExpired:
			status = http.StatusBadRequest
		}
		return &Error{Status: status, Code: se.Code, Message: se.Message}
	}
	h.log.Error("ec2 request", "request", reqID, "err", err)
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Message: "An internal error has occurred (request " + reqID + ")."}
}
