package apiserver

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// metrics are the server's Prometheus collectors, in a registry of its own
// so that several servers (tests) can live in one process. The watch
// cache registers its own collectors in it.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ouro_apiserver_requests_total",
			Help: "API requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ouro_apiserver_request_duration_seconds",
			Help:    "API request latency by route pattern and method (watches excluded).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// serveMetrics answers GET /metrics to cluster admins only, as
// Kubernetes does: the figures tell an outsider what the cloud runs, how
// busy it is and when it is weak. A scraper gets a token of its own.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	if !id.ClusterAdmin {
		return forbidden("only a cluster admin may read /metrics")
	}
	s.metrics.handler().ServeHTTP(w, r)
	return nil
}

// statusWriter records the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	identity    string
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client (watch and log streams).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts, times and logs (to log) each request by its route
// pattern.
func (m *metrics) instrument(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		code := strconv.Itoa(sw.status)
		m.requests.WithLabelValues(route, r.Method, code).Inc()
		elapsed := time.Since(start)
		if r.URL.Query().Get("watch") != "true" && !isStream(r) {
			m.latency.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
		}
		log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route,
			"status", sw.status, "caller", sw.identity, "duration", elapsed)
	})
}

func isStream(r *http.Request) bool {
	return (r.Method == http.MethodGet && (r.URL.Query().Get("follow") == "true" || r.URL.Query().Get("ws") == "1")) ||
		(r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/console"))
}

// recoverPanics answers a panicking handler with a 500 api.Error and logs
// the stack to log.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.Error("handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, api.ErrorBody{Error: &api.Error{
				Status: http.StatusInternalServerError, Code: api.CodeInternal,
				Message: "internal error", Hint: "the server log has the details"}})
		}()
		next.ServeHTTP(w, r)
	})
}
