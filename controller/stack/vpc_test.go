package stack_test

import (
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// TestStackVPC: a stack's VPC is made before its subnets and deleted
// after them.
func TestStackVPC(t *testing.T) {
	r := newRig(t)
	spec := api.StackSpec{Resources: []api.StackResource{
		res("Network", "app", `{"cidr":"10.50.2.0/24","vpc":"prod"}`),
		res("Network", "web", `{"cidr":"10.50.1.0/24","vpc":"prod"}`),
		res("VPC", "prod", `{"cidr":"10.50.0.0/16"}`),
	}}
	if err := r.apply(r.alice, "net", spec); err != nil {
		t.Fatalf("apply: %v", err)
	}
	r.applied("net")
	n, ok := r.object(api.NetworkKind, "web").(*api.Network)
	v, _ := r.object(api.VPCKind, "prod").(*api.VPC)
	if !ok || v == nil || n.Spec.VPC != "prod" || n.Status.VPCUID != v.Metadata.UID {
		t.Fatalf("network web = %+v in VPC %+v", n, v)
	}
	if err := r.alice.Delete(ctx(t), api.StackKind, "default", "net"); err != nil {
		t.Fatalf("delete stack: %v", err)
	}
	wait.For(t, waitLimit, "the VPC and its subnets gone", func() bool {
		return r.object(api.VPCKind, "prod") == nil && r.object(api.NetworkKind, "web") == nil && r.object(api.NetworkKind, "app") == nil
	})
}
