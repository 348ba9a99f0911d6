package admission

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// createVPC admits and stores a VPC.
func createVPC(t *testing.T, st store.Interface, project, name, cidr string) *api.VPC {
	t.Helper()
	v := &api.VPC{Metadata: api.ObjectMeta{Name: name, Project: project}, Spec: api.VPCSpec{CIDR: cidr}}
	if err := ValidateVPCCreate(v); err != nil {
		t.Fatalf("VPC %s: %v", name, err)
	}
	if _, err := st.Create(context.Background(), v, store.CreateOptions{}); err != nil {
		t.Fatalf("VPC %s: %v", name, err)
	}
	return v
}

// createSubnet admits and stores a network of a VPC.
func createSubnet(a *Admitter, st store.Interface, project, name, vpc, cidr string) error {
	ctx := context.Background()
	n := &api.Network{Metadata: api.ObjectMeta{Name: name, Project: project}, Spec: api.NetworkSpec{CIDR: cidr, VPC: vpc}}
	if err := a.ValidateNetworkCreate(ctx, n); err != nil {
		return err
	}
	_, err := a.StoreNetwork(ctx, st, n, store.CreateOptions{})
	return err
}

func status(err error) int {
	if ae, ok := err.(*api.Error); ok {
		return ae.Status
	}
	return 0
}

func TestDefaultVPC(t *testing.T) {
	a, st := newCloud(t)
	ctx := context.Background()
	var v api.VPC
	if err := st.Get(ctx, api.VPCKind, "default", DefaultVPCName, &v); err != nil {
		t.Fatalf("default VPC: %v", err)
	}
	if !v.Status.Default || v.Spec.CIDR != DefaultVPCCIDR || v.Status.SecurityGroup != DefaultGroupName ||
		len(v.Status.RouteTable.Routes) != 2 || v.Status.RouteTable.Routes[0].Target != api.RouteTargetLocal ||
		len(v.Status.NetworkACL.Entries) == 0 || !v.DNSHostnames() || !v.DNSSupport() {
		t.Errorf("default VPC = %+v", v)
	}
	var n api.Network
	if err := st.Get(ctx, api.NetworkKind, "default", DefaultNetworkName, &n); err != nil || n.Spec.VPC != DefaultVPCName || n.Status.VPCUID != v.Metadata.UID {
		t.Fatalf("default network = %+v, %v; want the default VPC's subnet", n.Spec, err)
	}

	// A project made before VPCs: its default network is adopted, its
	// addresses unchanged, and running it again changes nothing.
	old := &api.Network{Metadata: api.ObjectMeta{Name: DefaultNetworkName, Project: "old"}, Spec: api.NetworkSpec{CIDR: DefaultNetworkCIDR}}
	if err := a.ValidateNetworkCreate(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreNetwork(ctx, st, old, store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.EnsureProjectNetworking(ctx, st, "old"); err != nil {
			t.Fatalf("EnsureProjectNetworking: %v", err)
		}
	}
	if err := st.Get(ctx, api.NetworkKind, "old", DefaultNetworkName, &n); err != nil || n.Spec.VPC != DefaultVPCName ||
		n.Metadata.UID != old.Metadata.UID || n.Status.VNI != old.Status.VNI || n.Status.VPCUID == "" {
		t.Fatalf("old default network = %+v, %v; want it adopted by the default VPC", n, err)
	}
	// The adopted network holds its claim: an overlapping subnet is refused.
	if err := createSubnet(a, st, "old", "x", DefaultVPCName, "172.31.8.0/24"); status(err) != http.StatusBadRequest && status(err) != http.StatusUnprocessableEntity {
		t.Errorf("subnet overlapping the adopted default network: %v", err)
	}
}

func TestVPCSubnets(t *testing.T) {
	a, st := newCloud(t)
	ctx := context.Background()
	createVPC(t, st, "default", "v", "10.0.0.0/16")
	createVPC(t, st, "other", "theirs", "10.0.0.0/16")

	if err := createSubnet(a, st, "default", "a", "v", "10.0.1.0/24"); err != nil {
		t.Fatalf("subnet a: %v", err)
	}
	for _, tc := range []struct {
		name, vpc, cidr, want string
	}{
		{"same prefix", "v", "10.0.1.0/24", "overlaps"},
		{"inside", "v", "10.0.1.128/25", "overlaps"},
		{"around", "v", "10.0.0.0/20", "overlaps"},
		{"outside the VPC", "v", "10.1.0.0/24", "not a subnet"},
		{"another project's VPC", "theirs", "10.0.7.0/24", "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := createSubnet(a, st, "default", "x", tc.vpc, tc.cidr)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Errorf("create %s in %s: %v, want %q", tc.cidr, tc.vpc, err, tc.want)
			}
		})
	}
	if err := createSubnet(a, st, "default", "b", "v", "10.0.2.0/24"); err != nil {
		t.Fatalf("subnet b: %v", err)
	}

	t.Run("claims alone refuse overlaps", func(t *testing.T) {
		// Past the list check (as a racing create is), the store's
		// transaction still refuses it.
		for _, cidr := range []string{"10.0.2.0/24", "10.0.2.64/26", "10.0.0.0/22", "10.0.0.0/16"} {
			n := &api.Network{Metadata: api.ObjectMeta{Name: "race", Project: "default"}, Spec: api.NetworkSpec{CIDR: cidr, VPC: "v"}}
			if _, err := validateNetworkSpec(&n.Spec); err != nil {
				t.Fatal(err)
			}
			if _, err := a.StoreNetwork(ctx, st, n, store.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "overlaps") {
				t.Errorf("store %s: %v, want an overlap", cidr, err)
			}
		}
	})
	t.Run("racing creates", func(t *testing.T) {
		cidrs := []string{"10.0.8.0/22", "10.0.8.0/24", "10.0.9.0/24", "10.0.10.128/25", "10.0.11.0/24", "10.0.8.0/21"}
		var wg sync.WaitGroup
		for i, cidr := range cidrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				createSubnet(a, st, "default", fmt.Sprintf("r%d", i), "v", cidr)
			}()
		}
		wg.Wait()
		objs, _, err := st.List(ctx, api.NetworkKind, "default", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var stored []netip.Prefix
		for _, o := range objs {
			if n := o.(*api.Network); n.Spec.VPC == "v" {
				p := netip.MustParsePrefix(n.Spec.CIDR)
				for _, q := range stored {
					if p.Overlaps(q) {
						t.Errorf("subnets %s and %s of one VPC both stored", p, q)
					}
				}
				stored = append(stored, p)
			}
		}
	})
	t.Run("vpc is immutable", func(t *testing.T) {
		var n api.Network
		if err := st.Get(ctx, api.NetworkKind, "default", "a", &n); err != nil {
			t.Fatal(err)
		}
		old := n
		n.Spec.VPC = ""
		if err := ValidateNetworkUpdate(&old, &n); err == nil {
			t.Error("moving a subnet out of its VPC was admitted")
		}
		n.Spec.VPC, n.Status.VPCUID = old.Spec.VPC, "another"
		if err := ValidateNetworkStatus(&old, &n); err == nil {
			t.Error("changing a subnet's status.vpcUID was admitted")
		}
		var v api.VPC
		if err := st.Get(ctx, api.VPCKind, "default", "v", &v); err != nil {
			t.Fatal(err)
		}
		ov := v
		v.Spec.CIDR = "10.1.0.0/16"
		if err := ValidateVPCUpdate(&ov, &v); err == nil {
			t.Error("changing a VPC's prefix was admitted")
		}
		off := false
		v.Spec.CIDR, v.Spec.EnableDNSHostnames = ov.Spec.CIDR, &off
		if err := ValidateVPCUpdate(&ov, &v); err != nil {
			t.Errorf("changing a VPC's DNS flag: %v", err)
		}
		v.Spec.EnableDNSSupport = &off
		if err := ValidateVPCUpdate(&ov, &v); status(err) != http.StatusBadRequest {
			t.Errorf("turning a VPC's DNS off: %v, want 400", err)
		}
	})
	t.Run("delete in use", func(t *testing.T) {
		var v api.VPC
		if err := st.Get(ctx, api.VPCKind, "default", "v", &v); err != nil {
			t.Fatal(err)
		}
		err := a.BeforeDelete(ctx, st, &v)
		if status(err) != http.StatusConflict || !strings.Contains(err.Error(), "Network default/a") {
			t.Fatalf("delete VPC with subnets: %v, want 409 naming them", err)
		}
		objs, _, _ := st.List(ctx, api.NetworkKind, "default", store.ListOptions{})
		for _, o := range objs {
			if o.(*api.Network).Spec.VPC == "v" {
				if err := st.Delete(ctx, api.NetworkKind, "default", o.Meta().Name, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := a.BeforeDelete(ctx, st, &v); err != nil {
			t.Errorf("delete VPC without subnets: %v", err)
		}
		// Its prefixes are free again.
		if err := createSubnet(a, st, "default", "again", "v", "10.0.0.0/16"); err != nil {
			t.Errorf("subnet after the others went: %v", err)
		}
	})
}
