package netplane

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestOneNetworkFailsAlone takes the VNI of one of two networks with a
// device ouro does not own: Apply reports that network's failure, naming
// it, and still realises the other.
func TestOneNetworkFailsAlone(t *testing.T) {
	l := newLab(t)
	h1 := l.host["h1"]
	l.ip(h1.ns, "link", "add", "foreign0", "type", "vxlan", "id", "5002", "dstport", "4789", "local", "10.99.0.11")

	good, _ := twoHostSpecs(true)
	bad := api.HostNetworkEntry{
		UID: uid(200), Name: "blocked", Project: "p", VNI: 5002,
		CIDR: "172.30.0.0/24", Gateway: "172.30.0.1", NAT: true,
		Ports: []api.HostPort{portSpec(3, "c", "172.30.0.5")},
	}
	// A floating IP on the failing network must not fail the host's
	// shared parts.
	bad.Ports[0].FloatingIP = "192.0.2.77"
	spec := api.HostNetworkSpec{Networks: []api.HostNetworkEntry{bad, good.Networks[0]}}

	for range 2 { // a repeated Apply fails the same way, and only so
		err := h1.plane.Apply(context.Background(), spec)
		var ne *NetworkError
		if !errors.As(err, &ne) {
			t.Fatalf("Apply = %v, want a *NetworkError", err)
		}
		if ne.UID != uid(200) || ne.Name != "blocked" || ne.VNI != 5002 || ne.NetworkUID() != uid(200) {
			t.Errorf("NetworkError names %s %s %d, want the network blocked", ne.UID, ne.Name, ne.VNI)
		}
		if others := notNetworkErrors(err); len(others) > 0 {
			t.Errorf("failures beyond the blocked network: %v", others)
		}
		if msg := err.Error(); !strings.Contains(msg, "blocked") || !strings.Contains(msg, "ourx5002") || strings.Contains(msg, "vni 5001") {
			t.Errorf("error %q should name network blocked and its device, not the other network", msg)
		}
		mustPing(t, h1.plane.NetNSPath(uid(1)), "172.31.0.1")
	}
	if out := l.ip(h1.ns, "-d", "link", "show", "foreign0"); !strings.Contains(out, "vxlan id 5002") {
		t.Errorf("the foreign device was touched: %s", out)
	}

	// Once the VNI is free, the network comes up.
	l.ip(h1.ns, "link", "del", "foreign0")
	l.apply("h1", spec)
	mustPing(t, h1.plane.NetNSPath(uid(3)), "172.30.0.1")
}

// notNetworkErrors returns the leaves of an Apply error that are not a
// *NetworkError.
func notNetworkErrors(err error) []error {
	switch u := err.(type) {
	case nil, *NetworkError:
		return nil
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, notNetworkErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return notNetworkErrors(u.Unwrap())
	}
	return []error{err}
}
