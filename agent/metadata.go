package agent

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

// MetadataPlane is implemented by network planes that can host the
// metadata service inside each network's router namespace (package
// netplane does).
type MetadataPlane interface {
	// ListenMetadata opens a listener on the metadata address and port in
	// the router namespace of the network with vni, and says which
	// namespace that is.
	ListenMetadata(vni, port int) (ln net.Listener, nsID uint64, err error)
	// RouterNSID identifies the router namespace of vni as it is now; 0
	// when there is none.
	RouterNSID(vni int) uint64
}

// metadataService runs one metadata HTTP server per network of the host.
// Its data is the last applied HostNetwork (who has which address) and
// the instance cache (what each instance is): requests cost no API call.
type metadataService struct {
	mu sync.RWMutex
	// ports maps network UID → instance address → port, from the last
	// HostNetwork applied.
	ports map[string]map[netip.Addr]api.HostPort
	// servers by network UID; touched only by the network loop.
	servers map[string]*metadataServer
}

type metadataServer struct {
	vni  int
	nsID uint64
	srv  *http.Server
}

// port returns the port with addr on a network.
func (m *metadataService) port(network string, addr netip.Addr) (api.HostPort, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.ports[network][addr]
	return p, ok
}

// syncMetadata makes the metadata servers match the networks of spec: it
// records their ports and starts a server for each network whose router
// namespace exists, closing those of networks that left and of namespaces
// that were made again. Failures are logged and retried with the next
// apply (at least every minute).
func (a *Agent) syncMetadata(spec api.HostNetworkSpec) {
	mp, ok := a.cfg.Network.(MetadataPlane)
	if !ok {
		return
	}
	m := &a.meta
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

	if m.servers == nil {
		m.servers = map[string]*metadataServer{}
	}
	// Close first: a network made again with the same VNI listens on the
	// same address in the same namespace.
	for uid, s := range m.servers {
		if vni, ok := vnis[uid]; ok && vni == s.vni && mp.RouterNSID(vni) == s.nsID {
			continue
		}
		s.srv.Close()
		delete(m.servers, uid)
		a.log.Debug("metadata service stopped", "network", uid, "vni", s.vni)
	}
	for uid, vni := range vnis {
		if _, ok := m.servers[uid]; ok || mp.RouterNSID(vni) == 0 {
			continue
		}
		ln, nsID, err := mp.ListenMetadata(vni, metadata.Port)
		if err != nil {
			a.log.Warn("metadata service", "network", uid, "vni", vni, "err", err)
			continue
		}
		network := uid
		srv := &http.Server{
			Handler: metadata.NewHandler(metadata.LookupFunc(func(addr netip.Addr) (*metadata.Instance, bool) {
				return a.metadataOf(network, addr)
			})),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Warn("metadata service ended", "network", network, "err", err)
			}
		}()
		m.servers[uid] = &metadataServer{vni: vni, nsID: nsID, srv: srv}
		a.log.Debug("metadata service started", "network", uid, "vni", vni)
	}
}

// closeMetadata stops every metadata server (the agent is stopping).
func (a *Agent) closeMetadata() {
	for uid, s := range a.meta.servers {
		s.srv.Close()
		delete(a.meta.servers, uid)
	}
}

// metadataOf returns what the instance with addr on a network may know
// about itself.
func (a *Agent) metadataOf(network string, addr netip.Addr) (*metadata.Instance, bool) {
	p, ok := a.meta.port(network, addr)
	if !ok {
		return nil, false
	}
	inst, ok := a.cache.byUIDCopy(p.Instance)
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
		Zone:         a.zone(),
	}, true
}
