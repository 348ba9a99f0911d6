package apiserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// SuspectTTL is how long a host stays alive, unless it heartbeats again,
// once a connection its agent heartbeated over has closed and its agent's
// own endpoint refused connections twice: the agent's process is gone while
// its machine lives on (killed, crashed). A live agent's endpoint answers,
// and nothing is changed for it, whatever closed its connection; a dial
// that times out (power cut, partition) proves nothing and leaves the
// host to its heartbeat TTL (6 s). And should a live agent's endpoint
// refuse after all, the agent heartbeats within its interval (2 s), a
// second before this runs out, and its next renewal gives the key the full
// TTL back: so a wrong refusal costs a lease, not a host.
const SuspectTTL = 3 * time.Second

// Probes of an agent's endpoint.
const (
	probeTimeout = time.Second
	// probeAgain is the pause before the second probe.
	probeAgain = 200 * time.Millisecond
)

// connKey keys the hostConns of a connection in its context.
type connKey struct{}

// hostConns remembers the hosts that heartbeated over one connection.
type hostConns struct {
	mu    sync.Mutex
	names map[string]bool
}

func (h *hostConns) add(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names == nil {
		h.names = map[string]bool{}
	}
	h.names[name] = true
}

// ConnContext is for http.Server.ConnContext: it gives each connection a
// record of the hosts that heartbeat over it.
func (s *Server) ConnContext(ctx context.Context, c net.Conn) context.Context {
	h := &hostConns{}
	s.conns.Store(c, h)
	return context.WithValue(ctx, connKey{}, h)
}

// ConnState is for http.Server.ConnState: when a connection over which
// hosts heartbeated closes, the endpoint of each host's agent is probed
// twice, and the presence of those whose agent is gone is made to run out
// within SuspectTTL unless they heartbeat again (store.Presence.Suspect).
func (s *Server) ConnState(c net.Conn, state http.ConnState) {
	if state != http.StateClosed && state != http.StateHijacked {
		return
	}
	v, ok := s.conns.LoadAndDelete(c)
	if !ok || s.life.Err() != nil {
		return // not ours, or the server is closing
	}
	h := v.(*hostConns)
	h.mu.Lock()
	names := make([]string, 0, len(h.names))
	for n := range h.names {
		names = append(names, n)
	}
	h.mu.Unlock()
	if len(names) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.life, 10*time.Second)
		defer cancel()
		for _, n := range names {
			s.suspectIfGone(ctx, n)
		}
	}()
}

// suspectIfGone shortens the presence of host name to SuspectTTL if its
// agent's endpoint refuses connections.
func (s *Server) suspectIfGone(ctx context.Context, name string) {
	var h api.Host
	if err := s.store.Get(ctx, api.HostKind, "", name, &h); err != nil {
		return
	}
	addr := hostPort(h.Status.AgentEndpoint)
	if addr == "" || !refused(ctx, addr) {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(probeAgain):
	}
	if !refused(ctx, addr) {
		return
	}
	if err := s.store.Presence().Suspect(ctx, name, SuspectTTL); err != nil {
		s.log.Warn("shortening the presence of a host whose agent is gone", "host", name, "err", err)
		return
	}
	s.log.Info("the host's agent is gone (its connection closed, its endpoint refuses connections): its presence ends in "+
		SuspectTTL.String()+" unless it heartbeats", "host", name, "endpoint", addr)
}

// refused reports whether a TCP connection to addr is refused: nothing
// listens there. An accepted connection (the agent lives) or a timeout (no
// proof) is not.
func refused(ctx context.Context, addr string) bool {
	dctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "tcp", addr)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// hostPort returns the host:port of an https URL, or "".
func hostPort(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return ""
	}
	if pu.Port() == "" {
		return net.JoinHostPort(pu.Hostname(), "443")
	}
	return pu.Host
}

// noteHeartbeat records that host name heartbeats over r's connection.
func noteHeartbeat(r *http.Request, name string) {
	if h, ok := r.Context().Value(connKey{}).(*hostConns); ok {
		h.add(name)
	}
}
