// Package endpoint serves the agent endpoint: the instance logs, exec,
// interactive consoles and (a teaching action) crashes of the instances
// on a host, to the API servers
// only, over mutual TLS. Every request must present a client certificate
// that chains to the cluster CA with common name "ouro-server"; the
// endpoint presents the agent certificate of the host's current
// credentials.
package endpoint

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/pki"
	"github.com/ouroboros-cloud/ouro/strictjson"
)

// Limits of the agent endpoint.
const (
	// MaxExecOutput caps each of an exec's stdout and stderr.
	MaxExecOutput = 4 << 20
	// DefaultExecTimeout and MaxExecTimeout bound an exec.
	DefaultExecTimeout = 60 * time.Second
	MaxExecTimeout     = 3600 * time.Second
	// maxExecRequest bounds an exec request body (stdin is base64 in it).
	maxExecRequest = 16 << 20
	// logPoll is how often a followed log is checked for new output.
	logPoll = 200 * time.Millisecond
)

// Instances finds the instances assigned to the host.
type Instances interface {
	// Lookup returns the instance with uid assigned to the host and its
	// driver, or an API error (not found, not provisioned yet).
	Lookup(uid string) (*api.Instance, driver.Driver, *api.Error)
}

// Identity is the host's current credentials: its agent certificate and
// the cluster CA that signs callers. ok is false before the host has any.
type Identity interface {
	TLSIdentity() (cert tls.Certificate, clientCAs *x509.CertPool, ok bool)
}

// Config configures a Server.
type Config struct {
	Instances Instances
	Identity  Identity
	// Reach finds the way to an instance for port forwards; nil refuses
	// them.
	Reach  Reach
	Logger *slog.Logger
}

// Server is the agent endpoint. Build it with New and serve it with
// Serve.
type Server struct {
	cfg Config
}

// New returns the endpoint; it listens on nothing until Serve.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg}
}

// Handler returns the endpoint's HTTP handler, which refuses callers that
// are not servers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/instances/{uid}/logs", s.handleLogs)
	mux.HandleFunc("POST /v1/instances/{uid}/exec", s.handleExec)
	mux.HandleFunc("POST /v1/instances/{uid}/console", s.handleConsole)
	mux.HandleFunc("POST /v1/instances/{uid}/crash", s.handleCrash)
	mux.HandleFunc("POST /v1/instances/{uid}/portforward", s.handlePortForward)
	return onlyServers(mux)
}

// Serve serves the endpoint with TLS on ln until ctx ends, then shuts it
// down (waiting up to 5 s for requests in flight). Request contexts end
// with ctx. It returns nil after ctx ended and the error of the server
// otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(tls.NewListener(ln, s.TLSConfig())) }()
	select {
	case err := <-serveErr:
		srv.Close()
		return fmt.Errorf("serve agent endpoint: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	<-serveErr
	return nil
}

// TLSConfig serves the agent certificate of the current credentials and
// requires a client certificate signed by the cluster CA.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool, ok := s.cfg.Identity.TLSIdentity()
			if !ok {
				return nil, errors.New("agent has no credentials yet")
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool,
				NextProtos:   []string{"http/1.1"},
			}, nil
		},
	}
}

// onlyServers refuses callers whose verified certificate is not a
// server's.
func onlyServers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeError(w, &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
				Message: "a client certificate signed by the cluster CA is required"})
			return
		}
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != pki.ServerCN {
			writeError(w, &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
				Message: fmt.Sprintf("certificate %q may not call the agent", cn), Hint: "only API servers may"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleLogs serves an instance's output: ?tail=N keeps the last N lines,
// ?follow=true keeps streaming what is appended until the caller leaves.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	_, _, d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, api.Invalid("follow", "use true or false", "follow %q is not a boolean", v))
			return
		}
		follow = b
	}
	tail := -1
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			writeError(w, api.Invalid("tail", "use a number of lines, or -1 for all", "tail %q is not valid", v))
			return
		}
		tail = n
	}
	path := d.LogPath(r.PathValue("uid"))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	flusher, _ := w.(http.Flusher)
	if follow {
		// Answer at once: the file may appear only later.
		w.WriteHeader(http.StatusOK)
		if flusher != nil {
			flusher.Flush()
		}
	}
	f, err := openLog(r.Context(), path, follow)
	if err != nil {
		switch {
		case follow:
			// The status is sent; the caller sees the stream end.
		case errors.Is(err, fs.ErrNotExist):
			w.WriteHeader(http.StatusOK) // no output yet
		default:
			writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()})
		}
		return
	}
	defer f.Close()
	var off int64
	if tail >= 0 {
		if off, err = tailOffset(f, tail); err != nil {
			if !follow {
				writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()})
			}
			return
		}
	}
	if !follow {
		w.WriteHeader(http.StatusOK)
	}
	for {
		n, err := copyFrom(w, f, off)
		off += n
		if err != nil {
			return
		}
		if flusher != nil && (n > 0 || !follow) {
			flusher.Flush()
		}
		if !follow {
			return
		}
		if st, err := f.Stat(); err == nil && st.Size() < off {
			off = 0 // truncated: start over
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(logPoll):
		}
	}
}

// openLog opens a log file. When following, a missing file is waited for.
func openLog(ctx context.Context, path string, follow bool) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if err == nil || !follow || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(logPoll):
		}
	}
}

// copyFrom writes f's bytes from off to its current end into w.
func copyFrom(w io.Writer, f *os.File, off int64) (int64, error) {
	return io.Copy(w, io.NewSectionReader(f, off, 1<<62))
}

// tailOffset returns the offset where the last n lines of f start.
func tailOffset(f *os.File, n int) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat log: %w", err)
	}
	size := st.Size()
	if n == 0 || size == 0 {
		return size, nil
	}
	need := n
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return 0, fmt.Errorf("read log: %w", err)
	}
	if last[0] == '\n' {
		need++ // the final newline ends the last line
	}
	buf := make([]byte, 64<<10)
	for pos := size; pos > 0; {
		chunk := min(int64(len(buf)), pos)
		pos -= chunk
		if _, err := f.ReadAt(buf[:chunk], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read log: %w", err)
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				need--
				if need == 0 {
					return pos + i + 1, nil
				}
			}
		}
	}
	return 0, nil
}

// handleExec runs a command in a running instance: to its end, or on a
// terminal when the request asks to upgrade to api.ExecTTYProtocol
// (handleExecTTY).
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	if upgrade.Requested(r, api.ExecTTYProtocol) {
		s.handleExecTTY(w, r)
		return
	}
	uid, inst, d, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ex, ok := d.(driver.Execer)
	if !ok {
		writeError(w, api.Invalid("", "exec works in containers", "driver %s cannot run commands in instances", d.Name()))
		return
	}
	var req api.ExecRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxExecRequest))
	if err == nil {
		err = strictjson.Decode(body, &req)
	}
	if err != nil {
		field := ""
		var fe *strictjson.FieldError
		var de *strictjson.DuplicateKeyError
		switch {
		case errors.As(err, &fe):
			field = fe.Path
		case errors.As(err, &de):
			field = de.Path
		}
		writeError(w, api.Invalid(field, "send an ExecRequest as JSON", "bad exec request: %v", err))
		return
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		writeError(w, api.Invalid("command", "give the program and its arguments", "command is required"))
		return
	}
	timeout := DefaultExecTimeout
	if req.TimeoutSeconds != 0 {
		timeout = time.Duration(req.TimeoutSeconds) * time.Second
		if req.TimeoutSeconds < 0 || timeout > MaxExecTimeout {
			writeError(w, api.Invalid("timeoutSeconds", "use 1 to 3600", "timeout %d s is out of range", req.TimeoutSeconds))
			return
		}
	}
	if apiErr := notRunning(r.Context(), d, inst, uid); apiErr != nil {
		writeError(w, apiErr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	stdout, stderr := &cappedBuffer{max: MaxExecOutput}, &cappedBuffer{max: MaxExecOutput}
	code, err := ex.Exec(ctx, uid, req.Command, bytes.NewReader(req.Stdin), stdout, stderr)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			writeError(w, &api.Error{Status: http.StatusGatewayTimeout, Code: api.CodeUnavailable,
				Message: fmt.Sprintf("command did not finish within %s", timeout), Hint: "raise timeoutSeconds (at most 3600)"})
			return
		}
		writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: fmt.Sprintf("exec: %v", err)})
		return
	}
	writeJSON(w, http.StatusOK, api.ExecResponse{
		ExitCode:  code,
		Stdout:    stdout.buf.Bytes(),
		Stderr:    stderr.buf.Bytes(),
		Truncated: stdout.truncated || stderr.truncated,
	})
}

// cappedBuffer keeps the first max bytes written to it and drops the
// rest, noting that it did; writes never fail, so the command is not
// disturbed.
type cappedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if len(p) > room {
		c.truncated = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the caller may have left
}

func writeError(w http.ResponseWriter, e *api.Error) {
	writeJSON(w, api.StatusOf(e), api.ErrorBody{Error: e})
}

// lookup finds the instance the request names by its uid, and the
// driver that runs it. When there is none it answers the error and
// returns ok false.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (uid string, inst *api.Instance, d driver.Driver, ok bool) {
	uid = r.PathValue("uid")
	inst, d, apiErr := s.cfg.Instances.Lookup(uid)
	if apiErr != nil {
		writeError(w, apiErr)
		return "", nil, nil, false
	}
	return uid, inst, d, true
}

// notRunning returns the conflict to answer when the instance inst
// (uid) of driver d is not running, and nil when it runs.
func notRunning(ctx context.Context, d driver.Driver, inst *api.Instance, uid string) *api.Error {
	st, err := d.Inspect(ctx, uid)
	if err != nil || st.State != driver.StateRunning {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %s is not running", key(inst)), Hint: "start it first"}
	}
	return nil
}

// key names an instance in messages: "project/name".
func key(inst *api.Instance) string { return inst.Metadata.Project + "/" + inst.Metadata.Name }
