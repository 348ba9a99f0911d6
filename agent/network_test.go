package agent

import (
	"reflect"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/driver"
)

func TestOrderNICs(t *testing.T) {
	a := driver.NIC{MAC: "0a:58:0a:00:00:01", Tap: "ourpa"}
	b := driver.NIC{MAC: "0a:58:0a:00:00:02", Tap: "ourpb"}
	c := driver.NIC{MAC: "0a:58:0a:00:00:03", Tap: "ourpc"}
	// The host network lists networks by name; the instance's first
	// attachment is its primary interface.
	ifcs := []api.Interface{{Network: "zeta", MAC: "0A:58:0A:00:00:02"}, {Network: "alpha", MAC: "0a:58:0a:00:00:01"}}
	got := orderNICs([]driver.NIC{a, c, b}, ifcs)
	if want := []driver.NIC{b, a, c}; !reflect.DeepEqual(got, want) {
		t.Errorf("orderNICs = %v, want %v", got, want)
	}
	if got := orderNICs(nil, ifcs); len(got) != 0 {
		t.Errorf("no ports: %v", got)
	}
}

func TestNetworkForWaitsForTaps(t *testing.T) {
	a := &Agent{}
	vm := &api.Instance{Metadata: api.ObjectMeta{UID: "u-vm"}, Status: api.InstanceStatus{Driver: api.DriverVM}}
	ct := &api.Instance{Metadata: api.ObjectMeta{UID: "u-ct"}, Status: api.InstanceStatus{Driver: api.DriverContainer}}
	veth := portInfo{netns: "/run/netns/ouro-iu", nics: []driver.NIC{{MAC: "0a:58:0a:00:00:01"}}}
	tap := portInfo{nics: []driver.NIC{{MAC: "0a:58:0a:00:00:02", RouterNetNS: "/run/netns/ouro-n1", Tap: "ourpuvm"}}}

	changed := a.net.set(map[string]portInfo{"u-vm": veth, "u-ct": veth})
	slices.Sort(changed)
	if !slices.Equal(changed, []string{"u-ct", "u-vm"}) {
		t.Errorf("first set: changed %v", changed)
	}
	if _, ok := a.networkFor(vm); ok {
		t.Error("a VM was ready on a veth port")
	}
	if _, ok := a.networkFor(ct); !ok {
		t.Error("a container was not ready on its veth port")
	}
	// The port becomes a TAP: the VM is reported changed (to be queued)
	// and is ready; the unchanged container is not reported.
	if changed := a.net.set(map[string]portInfo{"u-vm": tap, "u-ct": veth}); !slices.Equal(changed, []string{"u-vm"}) {
		t.Errorf("second set: changed %v, want [u-vm]", changed)
	}
	if p, ok := a.networkFor(vm); !ok || p.nics[0].Tap != "ourpuvm" {
		t.Errorf("VM with its TAP applied: %+v ready %v", p, ok)
	}
}
