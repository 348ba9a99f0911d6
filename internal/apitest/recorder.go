package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// Request is what a Recorder saw of one request.
type Request struct {
	Method, Path, Query string
	// Key is the Idempotency-Key header; Auth the Authorization header.
	Key, Auth string
	// Body is the request body as sent.
	Body string
	// At is when the request arrived.
	At time.Time
	// Status is the status code of the answer, once the answer is
	// complete (0 before: a watch has none while it streams).
	Status int
}

// Recorder wraps the server's handler (Config.Wrap) to record every
// request and to answer chosen ones with an error instead of the server.
type Recorder struct {
	mu       sync.Mutex
	requests []*Request
	fail     map[string]*api.Error
	next     http.Handler
}

// Wrap is a Config.Wrap that puts r in front of h.
func (r *Recorder) Wrap(h http.Handler) http.Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next = h
	return r
}

// Fail makes r answer every request to "METHOD /path" with e; a nil e
// lets such requests through again.
func (r *Recorder) Fail(route string, e *api.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		r.fail = map[string]*api.Error{}
	}
	r.fail[route] = e
}

// Requests returns the requests seen so far, oldest first.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Request, len(r.requests))
	for i, req := range r.requests {
		out[i] = *req
	}
	return out
}

// Reset forgets the requests seen so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// ServeHTTP implements http.Handler.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	seen := &Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery,
		Key: req.Header.Get("Idempotency-Key"), Auth: req.Header.Get("Authorization"), Body: string(body), At: time.Now()}
	r.mu.Lock()
	r.requests = append(r.requests, seen)
	e, next := r.fail[req.Method+" "+req.URL.Path], r.next
	r.mu.Unlock()
	status := http.StatusOK
	if e != nil {
		status = e.Status
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.Status)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: e})
	} else {
		cw := &codeWriter{ResponseWriter: w}
		next.ServeHTTP(cw, req)
		if cw.code != 0 {
			status = cw.code
		}
	}
	r.mu.Lock()
	seen.Status = status
	r.mu.Unlock()
}

// codeWriter keeps the status code a handler answered with; it lets
// streams flush.
type codeWriter struct {
	http.ResponseWriter
	code int
}

// WriteHeader keeps the first code and sends it.
func (w *codeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Flush sends what the handler wrote so far (watch streams).
func (w *codeWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
