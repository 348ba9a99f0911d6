// Package metaserver runs the instance metadata service of a host: one
// HTTP server (package metadata's handler) per network, listening on the
// metadata address inside the network's router namespace, which the
// network plane opens. What it serves comes from the last applied
// HostNetwork (who has which address) and the agent's instances (what
// each instance is): requests cost no API call.
package metaserver

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/metadata"
)

// Plane is implemented by network planes that can host the metadata
// service inside each network's router namespace (package netplane
// does).
type Plane interface {
	// ListenMetadata opens a listener on the metadata address and port in
	// the router namespace of the network with vni, and says which
	// namespace that is.
	ListenMetadata(vni, port int) (ln net.Listener, nsID uint64, err error)
	// RouterNSID identifies the router namespace of vni as it is now; 0
	// when there is none.
	RouterNSID(vni int) uint64
}

// Instances finds the instances assigned to the host.
type Instances interface {
	// ByUID returns the assigned instance with uid.
	ByUID(uid string) (*api.Instance, bool)
}

// Config configures a Service.
type Config struct {
	// Plane opens the listeners; nil makes a Service that serves nothing.
	Plane     Plane
	Instances Instances
	// Zone is the host's availability zone, told to its instances.
	Zone   string
	Logger *slog.Logger
}

// Service runs one metadata HTTP server per network of the host. Sync and
// Close are called from one goroutine (the agent's network loop).
type Service struct {
	cfg Config

	mu sync.RWMutex
	// ports maps network UID → instance address → port, from the last
	// HostNetwork applied.
	ports map[string]map[netip.Addr]api.HostPort
	// servers by network UID; touched only by Sync and Close.
	servers map[string]*server
}

// New returns a Service; it serves nothing until Sync.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, servers: map[string]*server{}}
}

// server is the metadata server of one network.
type server struct {
	vni  int
	nsID uint64
	srv  *http.Server
}

// port returns the port with addr on a network.
func (m *Service) port(network string, addr netip.Addr) (api.HostPort, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.ports[network][addr]
	return p, ok
}

// Sync makes the metadata servers match the networks of spec: it
// records their ports and starts a server for each network whose router
// namespace exists, closing those of networks that left and of namespaces
// that were made again. Failures are logged and retried with the next
// apply (at least every minute).
func (m *Service) Sync(spec api.HostNetworkSpec) {
	mp := m.cfg.Plane
	if mp == nil {
		return
	}
	ports := map[string]map[netip.Addr]api.HostPort{}
	vnis := map[string]int{}
	for _, n := range spec.Networks {
		byAddr := map[netip.Addr]api.HostPort{}
		for _, p := range n.Ports {
			if ip, err := netip.ParseAddr(p.IP); err == nil {
				byAddr[ip] = p
			}
		}
		ports[n.UID], vnis[n.UID] = byAddr, n.VNI
	}
	m.mu.Lock()
	m.ports = ports
	m.mu.Unlock()

	// Close first: a network made again with the same VNI listens on the
	// same address in the same namespace.
	for uid, s := range m.servers {
		if vni, ok := vnis[uid]; ok && vni == s.vni && mp.RouterNSID(vni) == s.nsID {
			continue
		}
		s.srv.Close()
		delete(m.servers, uid)
		m.cfg.Logger.Debug("metadata service stopped", "network", uid, "vni", s.vni)
	}
	for uid, vni := range vnis {
		if _, ok := m.servers[uid]; ok || mp.RouterNSID(vni) == 0 {
			continue
		}
		ln, nsID, err := mp.ListenMetadata(vni, metadata.Port)
		if err != nil {
			m.cfg.Logger.Warn("metadata service", "network", uid, "vni", vni, "err", err)
			continue
		}
		network := uid
		srv := &http.Server{
			Handler: metadata.NewHandler(metadata.LookupFunc(func(addr netip.Addr) (*metadata.Instance, bool) {
				return m.instance(network, addr)
			})),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelDebug),
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.cfg.Logger.Warn("metadata service ended", "network", network, "err", err)
			}
		}()
		m.servers[uid] = &server{vni: vni, nsID: nsID, srv: srv}
		m.cfg.Logger.Debug("metadata service started", "network", uid, "vni", vni)
	}
}

// Close stops every metadata server.
func (m *Service) Close() {
	for uid, s := range m.servers {
		s.srv.Close()
		delete(m.servers, uid)
	}
}

// instance returns what the instance with addr on a network may know
// about itself.
func (m *Service) instance(network string, addr netip.Addr) (*metadata.Instance, bool) {
	p, ok := m.port(network, addr)
	if !ok {
		return nil, false
	}
	inst, ok := m.cfg.Instances.ByUID(p.Instance)
	if !ok {
		return nil, false
	}
	return &metadata.Instance{
		ID:           inst.Metadata.UID,
		Name:         inst.Metadata.Name,
		InstanceType: inst.Spec.Flavor,
		LocalIPv4:    p.IP,
		MAC:          p.MAC,
		PublicIPv4:   p.FloatingIP,
		KeyName:      inst.Spec.KeyName,
		PublicKeys:   inst.Spec.PublicKeys,
		UserData:     inst.Spec.UserData,
		Zone:         m.cfg.Zone,
	}, true
}
