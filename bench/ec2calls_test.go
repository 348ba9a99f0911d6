package bench

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/hollow"
	"github.com/ouroboros-cloud/ouro/hollow/hollowtest"
	"github.com/ouroboros-cloud/ouro/internal/ec2test"
)

// BenchmarkEC2Calls times single calls of the EC2 API against the REST
// calls that do the same, on a real server with hollow hosts: reading
// one instance (DescribeInstances by id through aws-sdk-go-v2; the same
// request signed alone and its answer read as bytes, "raw"; GET through
// the REST client) and creating one (RunInstances, POST). The gap
// between describe-one and describe-one-raw is the SDK's own cost per
// call (middleware, endpoint rules, signing, XML decoding).
func BenchmarkEC2Calls(b *testing.B) {
	ctx := context.Background()
	c := hollowtest.Start(b)
	h := c.RunHollow(b, hollow.Config{Count: 2, Capacity: hostCapacity})
	c.WaitHostsReady(b, h, hollow.DefaultNamePrefix, 2, time.Minute)
	var key api.AccessKey
	if _, err := c.Admin.Do(ctx, http.MethodPost, "/v1/accesskeys", nil, api.AccessKeyRequest{Project: hollowtest.Project}, &key); err != nil {
		b.Fatalf("access key: %v", err)
	}
	ec := ec2test.Client(c.URL, c.CACert, &key)
	out, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(hollowtest.ImageName), InstanceType: "tiny",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		b.Fatalf("RunInstances: %v", err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	in := &api.Instance{Metadata: api.ObjectMeta{Name: "rest-0", Project: hollowtest.Project},
		Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny"}}
	if _, err := c.Admin.Create(ctx, in, client.CreateOptions{}); err != nil {
		b.Fatalf("create: %v", err)
	}
	b.Run("describe-one", func(b *testing.B) {
		for b.Loop() {
			if _, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}}); err != nil {
				b.Fatal(err)
			}
		}
		reportPerCall(b)
	})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ec2test.Pool(c.CACert)}}}
	body := "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + id
	sum := sha256.Sum256([]byte(body))
	b.Run("describe-one-raw", func(b *testing.B) {
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, c.URL+"/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: key.Spec.AccessKeyID, SecretAccessKey: key.Status.Secret},
				req, hex.EncodeToString(sum[:]), "ec2", "ouro-1", time.Now()); err != nil {
				b.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		reportPerCall(b)
	})
	b.Run("rest-get-one", func(b *testing.B) {
		for b.Loop() {
			var got api.Instance
			if err := c.Admin.Get(ctx, api.InstanceKind, hollowtest.Project, "rest-0", &got); err != nil {
				b.Fatal(err)
			}
		}
		reportPerCall(b)
	})
	n := 0
	b.Run("run-one", func(b *testing.B) {
		for b.Loop() {
			n++
			if _, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(hollowtest.ImageName), InstanceType: "tiny",
				MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); err != nil {
				b.Fatal(err)
			}
		}
		reportPerCall(b)
	})
	b.Run("rest-create-one", func(b *testing.B) {
		for b.Loop() {
			n++
			in := &api.Instance{Metadata: api.ObjectMeta{Name: fmt.Sprintf("rest-c-%d", n), Project: hollowtest.Project},
				Spec: api.InstanceSpec{Image: hollowtest.ImageName, Flavor: "tiny"}}
			if _, err := c.Admin.Create(ctx, in, client.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		reportPerCall(b)
	})
}

// reportPerCall reports the sub-benchmark's mean time per call in
// microseconds, as us-per-call.
func reportPerCall(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N), "us-per-call")
}
