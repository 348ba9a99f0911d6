package store

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
)

// BenchmarkList10k lists 10,000 small instances in one project.
func BenchmarkList10k(b *testing.B) {
	s, cli := newTestStore(b)
	ctx := context.Background()
	ops := make([]clientv3.Op, 0, 100)
	for i := range 10000 {
		obj := instance("p", fmt.Sprintf("inst-%05d", i), map[string]string{"app": "web"})
		obj.Spec.Image = "debian"
		obj.Spec.Flavor = "small"
		obj.Metadata.UID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		val, err := encode(obj)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(objectKey(api.InstanceKind, "p", obj.Metadata.Name), string(val)))
		if len(ops) == cap(ops) {
			if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		items, _, err := s.List(ctx, api.InstanceKind, "p", ListOptions{})
		if err != nil || len(items) != 10000 {
			b.Fatalf("List = %d items, %v", len(items), err)
		}
	}
}
