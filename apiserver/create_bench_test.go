package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

// BenchmarkCreateInstance measures the API server's create of an
// instance over a real embedded etcd, through its HTTP handler (plain
// HTTP on loopback), as BenchmarkScale's clients send it: an idempotency
// key, a tiny instance tolerating the hollow taint on a /16 network, 32
// creates in flight. Each create goes through admission (image, flavor,
// network, security groups), the claim of its IP and the idempotency
// record in one etcd transaction.
func BenchmarkCreateInstance(b *testing.B) {
	e := newEnvWith(b, store.NewEtcd(etcdtest.Client(b)), Config{})
	e.project("p")
	e.image("p", "img", false)
	e.must(http.StatusCreated, "POST", "/v1/projects/p/networks", e.admin, network("scale", "10.128.0.0/16"))
	hc := e.ts.Client()
	hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	var next atomic.Int64
	b.SetParallelism(16) // 32 in flight on 2 cores
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			name := fmt.Sprintf("i-%06d", i)
			body, err := json.Marshal(api.Instance{
				Metadata: api.ObjectMeta{Name: name, Labels: map[string]string{"bench": "scale"}},
				Spec: api.InstanceSpec{Image: "img", Flavor: "tiny", Tolerations: []string{api.TaintHollow},
					Networks: []api.NetworkAttachment{{Network: "scale"}}}})
			if err != nil {
				b.Error(err)
				return
			}
			req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/v1/projects/p/instances", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.admin)
			req.Header.Set("Idempotency-Key", "bench-"+name)
			res, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			data, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				b.Errorf("create %s: %s: %.200s", name, res.Status, data)
				return
			}
		}
	})
}
