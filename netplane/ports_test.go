package netplane

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/netplane/netns"
)

func TestApplyPortsAddsAPortAlone(t *testing.T) {
	l := newLab(t)
	s1, s2 := twoHostSpecs(true)
	l.apply("h1", s1)
	l.apply("h2", s2)
	h1 := l.host["h1"].plane
	instB := l.host["h2"].plane.NetNSPath(uid(2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// c joins the network on h1 with no ingress rule: default deny.
	c := portSpec(3, "c", "172.31.0.7")
	s1.Networks[0].Ports = append(s1.Networks[0].Ports, c)
	if err := h1.ApplyPorts(ctx, s1, []string{uid(3)}); err != nil {
		t.Fatalf("ApplyPorts: %v", err)
	}
	instC := h1.NetNSPath(uid(3))
	mustPing(t, instC, "172.31.0.6") // its own traffic out, replies back
	mustNotPing(t, instB, "172.31.0.7")

	// The full Apply of the same spec finds the port and rules as they
	// should be.
	router := h1.routerNSPath(5001)
	before := l.snapshot("h1", router, instC)
	l.apply("h1", s1)
	if after := l.snapshot("h1", router, instC); after != before {
		t.Errorf("Apply after ApplyPorts changed the host:\n--- before\n%s\n--- after\n%s", before, after)
	}

	tests := []struct {
		name string
		edit func(s *api.HostNetworkSpec) []string
	}{
		{"a virtual machine's TAP", func(s *api.HostNetworkSpec) []string {
			p := portSpec(4, "d", "172.31.0.8")
			p.Driver = api.DriverVM
			s.Networks[0].Ports = append(s.Networks[0].Ports, p)
			return []string{uid(4)}
		}},
		{"a floating IP", func(s *api.HostNetworkSpec) []string {
			p := portSpec(4, "d", "172.31.0.8")
			p.FloatingIP = "10.99.0.101"
			s.Networks[0].Ports = append(s.Networks[0].Ports, p)
			return []string{uid(4)}
		}},
		{"a network new here", func(s *api.HostNetworkSpec) []string {
			e := s.Networks[0]
			e.UID, e.Name, e.VNI, e.CIDR, e.Gateway = uid(200), "other", 5002, "172.30.0.0/24", "172.30.0.1"
			e.Records = nil
			e.Ports = []api.HostPort{portSpec(4, "d", "172.30.0.8")}
			s.Networks = append(s.Networks, e)
			return []string{uid(4)}
		}},
		{"an instance the spec does not have", func(*api.HostNetworkSpec) []string {
			return []string{uid(9)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := s1
			spec.Networks = append([]api.HostNetworkEntry(nil), s1.Networks...)
			spec.Networks[0].Ports = append([]api.HostPort(nil), s1.Networks[0].Ports...)
			uids := tc.edit(&spec)
			if err := h1.ApplyPorts(ctx, spec, uids); !errors.Is(err, ErrApplyAll) {
				t.Fatalf("ApplyPorts: %v, want ErrApplyAll", err)
			}
			if netns.IsNamespace(h1.NetNSPath(uid(4))) {
				t.Error("ApplyPorts made the instance's namespace though it refused")
			}
		})
	}
}

func TestApplyPortsBeforeApply(t *testing.T) {
	p, err := New(Config{StateDir: t.TempDir(), UnderlayAddress: "10.99.0.11"})
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := twoHostSpecs(false)
	if err := p.ApplyPorts(context.Background(), s1, []string{uid(1)}); !errors.Is(err, ErrApplyAll) {
		t.Fatalf("ApplyPorts before any Apply: %v, want ErrApplyAll", err)
	}
}
