package bench

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
	"github.com/ouroboros-cloud/ouro/internal/ec2test"
)

// Sizes of BenchmarkEC2.
const (
	ec2Hosts       = 10
	ec2RunSamples  = 20
	ec2ListSize    = 1000
	ec2ListSamples = 50
	ec2Poll        = 5 * time.Millisecond
)

// BenchmarkEC2 measures the EC2-compatible API (docs/ec2.md) against the
// REST API, in one run on a real server (embedded etcd, API,
// controllers) with hollow hosts, through aws-sdk-go-v2:
//
//   - ec2-run-p50-ms: RunInstances until DescribeInstances shows it
//     running, polled every 5 ms; rest-run-p50-ms: the same instance
//     created through REST until GET shows it Running; run-ratio the
//     ratio of the medians (target ≤ 1.1);
//   - describe-1000-p50-ms, describe-1000-p99-ms: DescribeInstances of
//     1,000 instances, all on one page, decoded by the SDK (target p99 ≤
//     200 ms); describe-1000-raw-p50-ms and -p99-ms: the same request
//     signed alone and its answer read as bytes, the server's share.
//
// Run it with -benchtime 1x.
func BenchmarkEC2(b *testing.B) {
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
	var ec2Run, restRun, p50, p99, raw50, raw99 float64
	for range b.N {
		r := runEC2Bench(b)
		ec2Run, restRun, p50, p99 = ec2Run+r.ec2Run, restRun+r.restRun, p50+r.p50, p99+r.p99
		raw50, raw99 = raw50+r.raw50, raw99+r.raw99
	}
	n := float64(b.N)
	b.ReportMetric(ec2Run/n, "ec2-run-p50-ms")
	b.ReportMetric(restRun/n, "rest-run-p50-ms")
	b.ReportMetric(ec2Run/restRun, "run-ratio")
	b.ReportMetric(p50/n, "describe-1000-p50-ms")
	b.ReportMetric(p99/n, "describe-1000-p99-ms")
	b.ReportMetric(raw50/n, "describe-1000-raw-p50-ms")
	b.ReportMetric(raw99/n, "describe-1000-raw-p99-ms")
}

type ec2Result struct{ ec2Run, restRun, p50, p99, raw50, raw99 float64 }

func runEC2Bench(b *testing.B) ec2Result {
	b.StopTimer()
	ctx := context.Background()
	c := hollowtest.Start(b)
	h := c.RunHollow(b, hollow.Config{Count: ec2Hosts, Capacity: hostCapacity})
	hosts := c.WaitHostsReady(b, h, hollow.DefaultNamePrefix, ec2Hosts, time.Minute)
	// EC2 callers cannot tolerate taints: these hosts take anyone.
	for _, hst := range hosts {
		for {
			var cur api.Host
			if err := c.Admin.Get(ctx, api.HostKind, "", hst.Metadata.Name, &cur); err != nil {
				b.Fatal(err)
			}
			cur.Spec.Taints = nil
			err := c.Admin.Update(ctx, &cur)
			if err == nil {
				break
			}
			if !api.IsConflict(err) {
				b.Fatalf("untaint %s: %v", hst.Metadata.Name, err)
			}
		}
	}
	var key api.AccessKey
	if _, err := c.Admin.Do(ctx, http.MethodPost, "/v1/accesskeys", nil, api.AccessKeyRequest{Project: hollowtest.Project}, &key); err != nil {
		b.Fatalf("access key: %v", err)
	}
	ec := ec2test.Client(c.URL, c.CACert, &key)

	var ec2Times, restTimes, ec2Calls, restCalls []time.Duration
	for i := range ec2RunSamples {
		start := time.Now()
		out, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(hollowtest.ImageName), InstanceType: "tiny",
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		if err != nil {
			b.Fatalf("RunInstances: %v", err)
		}
		ec2Calls = append(ec2Calls, time.Since(start))
		id := aws.ToString(out.Instances[0].InstanceId)
		pollUntil(b, func() bool {
			d, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
			return err == nil && d.Reservations[0].Instances[0].State.Name == types.InstanceStateNameRunning
		})
		ec2Times = append(ec2Times, time.Since(start))

		start = time.Now()
		name := fmt.Sprintf("rest-%d", i)
		in := &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: hollowtest.Project},
			Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny"}}
		if _, err := c.Admin.Create(ctx, in, client.CreateOptions{}); err != nil {
			b.Fatalf("create: %v", err)
		}
		restCalls = append(restCalls, time.Since(start))
		pollUntil(b, func() bool {
			var got api.Instance
			return c.Admin.Get(ctx, api.InstanceKind, hollowtest.Project, name, &got) == nil && got.Status.Phase == api.PhaseRunning
		})
		restTimes = append(restTimes, time.Since(start))
	}
	var r ec2Result
	r.ec2Run, r.restRun = percentile(ec2Times, 0.50), percentile(restTimes, 0.50)
	b.Logf("the create call alone: RunInstances p50 %.1f ms, REST create p50 %.1f ms",
		percentile(ec2Calls, 0.50), percentile(restCalls, 0.50))

	// Fill up to 1,000 instances through REST, then describe them all.
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				in := &api.Instance{Metadata: api.ObjectMeta{Name: fmt.Sprintf("fill-%d", i), Project: hollowtest.Project},
					Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny"}}
				if err := createRetrying(ctx, c.Admin, in); err != nil {
					b.Errorf("create: %v", err)
				}
			}
		})
	}
	for i := range ec2ListSize - 2*ec2RunSamples {
		work <- i
	}
	close(work)
	wg.Wait()
	var lists []time.Duration
	for range ec2ListSamples {
		start := time.Now()
		out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{})
		if err != nil {
			b.Fatalf("DescribeInstances: %v", err)
		}
		lists = append(lists, time.Since(start))
		if len(out.Reservations) != ec2ListSize {
			b.Fatalf("DescribeInstances answered %d instances, want %d", len(out.Reservations), ec2ListSize)
		}
	}
	r.p50, r.p99 = percentile(lists, 0.50), percentile(lists, 0.99)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ec2test.Pool(c.CACert)}}}
	var raws []time.Duration
	const body = "Action=DescribeInstances&Version=2016-11-15"
	sum := sha256.Sum256([]byte(body))
	for range ec2ListSamples {
		req, _ := http.NewRequest(http.MethodPost, c.URL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: key.Spec.AccessKeyID, SecretAccessKey: key.Status.Secret},
			req, hex.EncodeToString(sum[:]), "ec2", "ouro-1", time.Now()); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		raws = append(raws, time.Since(start))
		if resp.StatusCode != http.StatusOK || n < 1000 {
			b.Fatalf("raw DescribeInstances: %d, %d bytes", resp.StatusCode, n)
		}
	}
	r.raw50, r.raw99 = percentile(raws, 0.50), percentile(raws, 0.99)
	b.Logf("RunInstances→running p50 %.0f ms, REST create→Running p50 %.0f ms (%.2f×); DescribeInstances of %d p50 %.1f ms p99 %.1f ms (server alone p50 %.1f ms p99 %.1f ms)",
		r.ec2Run, r.restRun, r.ec2Run/r.restRun, ec2ListSize, r.p50, r.p99, r.raw50, r.raw99)
	return r
}

// pollUntil calls done every ec2Poll until it is true (a minute at most).
func pollUntil(b *testing.B, done func() bool) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			b.Fatal("not done within a minute")
		}
		time.Sleep(ec2Poll)
	}
}
