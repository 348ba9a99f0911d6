package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/ec2test"
)

// ec2BenchPoll is how often both sides of BenchmarkEC2RunToRunning ask.
const ec2BenchPoll = 5 * time.Millisecond

// BenchmarkEC2RunToRunning measures, on a real server, agent and OCI
// runtime, the time from RunInstances (aws-sdk-go-v2) until
// DescribeInstances shows the container instance running, side by side
// with the same instance created through the REST API until GET shows it
// Running; both poll every 5 ms. Each iteration does both, in turns
// first, and leaves both running, as the container benchmark does: a
// create just after a teardown is slower, and an iteration's deletions
// would slow whichever side came next. The host has room for 32 tiny
// instances: run at most 15 iterations. It reports
// ec2-p50-ms, rest-p50-ms and their ratio (issue target ≤ 1.1).
//
//	go test ./test/e2e -run '^$' -bench EC2RunToRunning -benchtime 10x
func BenchmarkEC2RunToRunning(b *testing.B) {
	c := newCloud(b)
	c.addAgent("host-1")
	c.importBusybox()
	c.importSleeper()
	ctx := context.Background()
	cl := c.clientAs(c.admin)
	ec, ami := c.ec2Client(ctx)

	var made []string // names of the instances made
	n := 0
	runEC2 := func() time.Duration {
		n++
		// The Name tag names the instance.
		name := fmt.Sprintf("ec2-%d", n)
		start := time.Now()
		out, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String(ami), InstanceType: "tiny",
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), TagSpecifications: []types.TagSpecification{{
				ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String(name)}}}}})
		if err != nil {
			b.Fatalf("RunInstances: %v", err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		benchPoll(b, func() bool {
			d, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
			return err == nil && d.Reservations[0].Instances[0].State.Name == types.InstanceStateNameRunning
		})
		took := time.Since(start)
		made = append(made, name)
		return took
	}
	runREST := func() time.Duration {
		n++
		name := fmt.Sprintf("rest-%d", n)
		start := time.Now()
		in := &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "default"},
			Spec: api.InstanceSpec{Image: "sleeper", Flavor: "tiny"}}
		if _, err := cl.Create(ctx, in, client.CreateOptions{}); err != nil {
			b.Fatalf("create: %v", err)
		}
		benchPoll(b, func() bool {
			var got api.Instance
			return cl.Get(ctx, api.InstanceKind, "default", name, &got) == nil && got.Status.Phase == api.PhaseRunning
		})
		took := time.Since(start)
		made = append(made, name)
		return took
	}
	var ec2Times, restTimes durations
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			ec2Times = append(ec2Times, runEC2())
			restTimes = append(restTimes, runREST())
		} else {
			restTimes = append(restTimes, runREST())
			ec2Times = append(ec2Times, runEC2())
		}
	}
	b.StopTimer()
	for _, name := range made {
		if err := cl.Delete(ctx, api.InstanceKind, "default", name); err != nil {
			b.Fatalf("delete %s: %v", name, err)
		}
	}
	e, r := ec2Times.pct(0.5), restTimes.pct(0.5)
	b.ReportMetric(float64(e.Microseconds())/1000, "ec2-p50-ms")
	b.ReportMetric(float64(r.Microseconds())/1000, "rest-p50-ms")
	b.ReportMetric(float64(e)/float64(r), "run-ratio")
}

// benchPoll calls done every ec2BenchPoll until it is true (two minutes
// at most).
func benchPoll(b *testing.B, done func() bool) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			b.Fatal("not done within two minutes")
		}
		time.Sleep(ec2BenchPoll)
	}
}

// ec2Client makes an access key with ouro credentials create and returns
// an aws-sdk-go-v2 EC2 client that uses it with the cluster CA, and the
// AMI id of the sleeper image.
func (c *cloud) ec2Client(ctx context.Context) (*awsec2.Client, string) {
	c.t.Helper()
	var key api.AccessKey
	if err := json.Unmarshal([]byte(c.ouro("credentials", "create", "-o", "json")), &key); err != nil || key.Status.Secret == "" {
		c.t.Fatalf("credentials create: %v %+v", err, key)
	}
	ec := ec2test.Client(c.url, c.ca, &key)
	imgs, err := ec.DescribeImages(ctx, &awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"sleeper"}}}})
	if err != nil || len(imgs.Images) != 1 {
		c.t.Fatalf("DescribeImages name=sleeper: %v %+v", err, imgs)
	}
	return ec, aws.ToString(imgs.Images[0].ImageId)
}
