package apiserver

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// SuspectTTL is how long a host stays alive, unless it heartbeats again,
// once a connection its agent heartbeated over has closed. A closed
// connection is what a killed agent leaves behind when its machine lives
// on; an agent alive behind a connection closed for another reason
// heartbeats again within its interval (2 s), a second before this runs
// out, and gets its full TTL back. A power cut closes nothing: the
// heartbeat TTL (6 s) covers it.
const SuspectTTL = 3 * time.Second

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
// hosts heartbeated closes, their presence is made to run out within
// SuspectTTL unless they heartbeat again (store.Presence.Suspect).
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
			if err := s.store.Presence().Suspect(ctx, n, SuspectTTL); err != nil {
				s.log.Warn("shortening the presence of a host whose connection closed", "host", n, "err", err)
				continue
			}
			s.log.Info("a connection of the host's agent closed; it must heartbeat again within "+SuspectTTL.String(), "host", n)
		}
	}()
}

// noteHeartbeat records that host name heartbeats over r's connection.
func noteHeartbeat(r *http.Request, name string) {
	if h, ok := r.Context().Value(connKey{}).(*hostConns); ok {
		h.add(name)
	}
}
