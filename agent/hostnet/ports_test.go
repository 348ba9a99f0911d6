package hostnet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// portPlane is a fakePlane that can apply new ports alone (PortPlane).
// It notes, at each call, what the agent could do with instance "b".
type portPlane struct {
	fakePlane
	ports    *Ports
	portsErr error

	mu    sync.Mutex
	calls []string
}

func (p *portPlane) note(call string) {
	b := &api.Instance{Metadata: api.ObjectMeta{UID: "b"}}
	_, planned := p.ports.Planned(b)
	_, ready := p.ports.Ready(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call)
	if planned {
		p.calls = append(p.calls, "b planned")
	}
	if ready {
		p.calls = append(p.calls, "b ready")
	}
}

func (p *portPlane) Apply(ctx context.Context, spec api.HostNetworkSpec) error {
	p.note("apply")
	return p.fakePlane.Apply(ctx, spec)
}

func (p *portPlane) ApplyPorts(_ context.Context, _ api.HostNetworkSpec, uids []string) error {
	p.note("ports " + strings.Join(uids, " "))
	return p.portsErr
}

func TestLoopAppliesNewPortsFirst(t *testing.T) {
	port := func(uid, ip string) api.HostPort {
		return api.HostPort{Instance: uid, MAC: "0a:58:0a:00:00:0" + ip[len(ip)-1:], IP: ip}
	}
	spec := func(ports ...api.HostPort) api.HostNetworkSpec {
		return api.HostNetworkSpec{Networks: []api.HostNetworkEntry{{
			UID: "net-1", VNI: 4096, CIDR: "10.0.0.0/24", Gateway: "10.0.0.1", Ports: ports}}}
	}
	tests := []struct {
		name     string
		portsErr error
		want     []string
	}{
		{"ports alone, then the rest", nil,
			[]string{"apply", "ports b", "b planned", "apply", "b planned", "b ready"}},
		{"ports alone refused: all at once", errors.New("needs a full apply"),
			[]string{"apply", "ports b", "b planned", "apply", "b planned"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hn := api.HostNetwork{Metadata: api.ObjectMeta{Name: "host-1", UID: "hn-1", Generation: 1, ResourceVersion: "7"},
				Spec: spec(port("a", "10.0.0.5"))}
			fapi := newFakeAPI(t, hn)
			var ports Ports
			plane := &portPlane{ports: &ports, portsErr: tc.portsErr}
			rec := &recorder{}
			l := New(Config{Plane: plane, Host: "host-1", API: fapi, Ports: &ports, Metadata: rec, Queue: rec,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			ctx := context.Background()
			last, err := l.apply(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			fapi.mu.Lock()
			fapi.hn.Metadata.Generation, fapi.hn.Metadata.ResourceVersion = 2, "8"
			fapi.hn.Spec = spec(port("a", "10.0.0.5"), port("b", "10.0.0.6"),
				api.HostPort{Instance: "v", MAC: "0a:58:0a:00:00:07", IP: "10.0.0.7", Driver: api.DriverVM})
			fapi.mu.Unlock()
			if _, err := l.apply(ctx, last); err != nil {
				t.Fatal(err)
			}
			plane.mu.Lock()
			calls := plane.calls
			plane.mu.Unlock()
			if !slices.Equal(calls, tc.want) {
				t.Errorf("calls and what b could do then:\n got %q\nwant %q", calls, tc.want)
			}
			if _, ok := ports.Ready(&api.Instance{Metadata: api.ObjectMeta{UID: "b"}}); !ok {
				t.Error("b is not ready after the full apply")
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if !slices.Contains(rec.changed, "b") {
				t.Errorf("b was never queued: %v", rec.changed)
			}
		})
	}
}
