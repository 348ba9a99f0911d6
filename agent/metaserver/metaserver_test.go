package metaserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// fakeMetaPlane is a network plane whose "router namespaces" are numbers
// and whose metadata listeners are on loopback, where 127.0.0.x stand for
// instance addresses.
type fakeMetaPlane struct {
	mu        sync.Mutex
	ns        map[int]uint64
	listeners map[int]net.Listener
}

func (p *fakeMetaPlane) ListenMetadata(vni, _ int) (net.Listener, uint64, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners[vni] = ln
	return ln, p.ns[vni], nil
}

func (p *fakeMetaPlane) RouterNSID(vni int) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ns[vni]
}

func (p *fakeMetaPlane) setNS(vni int, id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ns[vni] = id
}

func (p *fakeMetaPlane) addr(vni int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listeners[vni].Addr().String()
}

// instances holds instances by uid.
type instances map[string]*api.Instance

func (m instances) ByUID(uid string) (*api.Instance, bool) {
	inst, ok := m[uid]
	return inst, ok
}

func newInstance(name, uid string) *api.Instance {
	return &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "demo", UID: uid}, Spec: api.InstanceSpec{Flavor: "small"}}
}

// getFrom fetches path from the metadata server at addr with source
// address from.
func getFrom(t *testing.T, from, addr, path string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext,
	}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestMetadataService(t *testing.T) {
	plane := &fakeMetaPlane{ns: map[int]uint64{4096: 1}, listeners: map[int]net.Listener{}}
	web := newInstance("web", "uid-web")
	web.Spec.KeyName, web.Spec.PublicKeys, web.Spec.UserData = "laptop", []string{"ssh-ed25519 AAAAkey me"}, "#!/bin/sh\necho hi\n"
	a := New(Config{Plane: plane, Zone: "rack-2", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Instances: instances{"uid-web": web, "uid-db": newInstance("db", "uid-db")}})
	t.Cleanup(a.Close)
	spec := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{{
		UID: "net-1", Name: "default", Project: "demo", VNI: 4096, CIDR: "127.0.0.0/8", Gateway: "127.0.0.254",
		Ports: []api.HostPort{
			{Instance: "uid-web", Name: "web", MAC: "0a:58:7f:00:00:01", IP: "127.0.0.1", FloatingIP: "192.0.2.7"},
			{Instance: "uid-db", Name: "db", MAC: "0a:58:7f:00:00:02", IP: "127.0.0.2"},
			// A port whose instance the agent does not know (yet).
			{Instance: "uid-new", Name: "new", MAC: "0a:58:7f:00:00:04", IP: "127.0.0.4"},
		},
	}}}
	a.Sync(spec)
	addr := plane.addr(4096)

	for _, tt := range []struct {
		from, path string
		code       int
		body       string
	}{
		{"127.0.0.1", "/latest/meta-data/instance-id", 200, "uid-web"},
		{"127.0.0.1", "/latest/meta-data/hostname", 200, "web"},
		{"127.0.0.1", "/latest/meta-data/instance-type", 200, "small"},
		{"127.0.0.1", "/latest/meta-data/local-ipv4", 200, "127.0.0.1"},
		{"127.0.0.1", "/latest/meta-data/mac", 200, "0a:58:7f:00:00:01"},
		{"127.0.0.1", "/latest/meta-data/public-ipv4", 200, "192.0.2.7"},
		{"127.0.0.1", "/latest/meta-data/public-keys/", 200, "0=laptop"},
		{"127.0.0.1", "/latest/meta-data/public-keys/0/openssh-key", 200, "ssh-ed25519 AAAAkey me"},
		{"127.0.0.1", "/latest/meta-data/placement/availability-zone", 200, "rack-2"},
		{"127.0.0.1", "/latest/user-data", 200, "#!/bin/sh\necho hi\n"},
		{"127.0.0.2", "/latest/meta-data/instance-id", 200, "uid-db"},
		{"127.0.0.2", "/latest/meta-data/public-ipv4", 404, ""},
		{"127.0.0.2", "/latest/user-data", 404, ""},
		{"127.0.0.3", "/latest/meta-data/instance-id", 403, ""},
		{"127.0.0.4", "/latest/meta-data/instance-id", 403, ""},
	} {
		code, body, err := getFrom(t, tt.from, addr, tt.path)
		if err != nil || code != tt.code || (code == 200 && body != tt.body) {
			t.Errorf("GET %s from %s = %d %q, %v; want %d %q", tt.path, tt.from, code, body, err, tt.code, tt.body)
		}
	}

	// An unchanged spec keeps the server; a namespace made again gets a
	// new one, and the old socket is closed.
	a.Sync(spec)
	if plane.addr(4096) != addr {
		t.Fatal("a repeated sync replaced the metadata server")
	}
	plane.setNS(4096, 2)
	a.Sync(spec)
	if _, _, err := getFrom(t, "127.0.0.1", addr, "/"); err == nil {
		t.Error("the listener in the replaced namespace still answers")
	}
	addr2 := plane.addr(4096)
	if code, body, err := getFrom(t, "127.0.0.2", addr2, "/latest/meta-data/instance-id"); err != nil || body != "uid-db" {
		t.Errorf("after the namespace was made again: %d %q %v", code, body, err)
	}

	// A network without its router namespace gets no server, and a
	// network that leaves the host loses its server.
	spec.Networks = append(spec.Networks, api.HostNetworkEntry{UID: "net-2", VNI: 4097, CIDR: "10.0.0.0/24"})
	a.Sync(spec)
	if len(a.servers) != 1 {
		t.Errorf("%d metadata servers, want 1 (vni 4097 has no namespace)", len(a.servers))
	}
	a.Sync(api.HostNetworkSpec{})
	if _, _, err := getFrom(t, "127.0.0.1", addr2, "/"); err == nil || len(a.servers) != 0 {
		t.Errorf("the server of a network that left still answers (%d servers)", len(a.servers))
	}
}
