package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/store"
)

// BenchmarkListInstances10k measures the API server's part of a full list
// of 10,000 instances over a real embedded etcd, through its HTTP handler
// (plain HTTP on loopback), as a project member asks for it: whole
// objects, the table view and the map view. Each sub-benchmark reports the
// answer's size and the client's decode of it apart (decode-ms).
func BenchmarkListInstances10k(b *testing.B) {
	const n = 10000
	e := newEnvWith(b, store.NewEtcd(etcdtest.Client(b)), Config{})
	e.project("p")
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				in := &api.Instance{Metadata: api.ObjectMeta{Name: fmt.Sprintf("i-%05d", i), Project: "p", UID: fmt.Sprintf("uid-%05d", i),
					Labels: map[string]string{"bench": "scale"}, CreationTimestamp: time.Now()},
					Spec: api.InstanceSpec{Image: "p/img", Flavor: "tiny", Resources: api.Resources{VCPUs: 1, MemoryMiB: 64, DiskGiB: 1},
						Tolerations: []string{api.TaintHollow},
						Networks:    []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default"}}}}}
				in.Status.Phase, in.Status.Host, in.Status.Driver = api.PhaseRunning, fmt.Sprintf("hollow-%04d", i%1000), "container"
				in.Status.Interfaces = []api.Interface{{Network: "default", IP: fmt.Sprintf("10.128.%d.%d", i/250, i%250+2), MAC: "0a:58:0a:80:00:02"}}
				in.Status.Conditions = []api.Condition{{Type: api.ConditionHealthy, Status: true, LastTransitionTime: time.Now()}}
				if _, err := e.store.Create(ctx, in, store.CreateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	member := e.userToken("mia", map[string]api.Role{"p": api.RoleMember})
	for _, view := range []string{"", api.ViewTable, api.ViewMap} {
		name := view
		if name == "" {
			name = "whole"
		}
		b.Run(name, func(b *testing.B) {
			path := "/v1/projects/p/instances"
			if view != "" {
				path += "?view=" + view
			}
			var size int
			var decode time.Duration
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+member)
				res, err := e.ts.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				data, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("%s: %v", res.Status, err)
				}
				b.StopTimer()
				t0 := time.Now()
				var list api.List[api.Instance]
				if err := json.Unmarshal(data, &list); err != nil || len(list.Items) != n {
					b.Fatalf("decode: %v, %d items", err, len(list.Items))
				}
				decode += time.Since(t0)
				b.StartTimer()
				size = len(data)
			}
			b.ReportMetric(float64(size)/1000, "KB")
			b.ReportMetric(float64(decode.Microseconds())/1000/float64(b.N), "decode-ms")
		})
	}
}
