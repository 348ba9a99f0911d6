package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// awsIn runs the AWS CLI in the cloud's namespace (a netCloud's server
// is reachable only from there) and decodes its JSON output into v.
func (a *awsCLI) awsIn(t *testing.T, netns string, v any, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"--endpoint-url", a.c.url, "--output", "json"}, args...)
	cmd := commandIn(netns, a.bin, argv...)
	cmd.Env = append(cmd.Environ(), a.env...)
	out, err := cmd.CombinedOutput()
	if err == nil && v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			t.Fatalf("aws %s: %v in %q", strings.Join(args, " "), err, out)
		}
	}
	return string(out), err
}

// TestEC2VPCWithAWSCLI: with the AWS CLI, a VPC and two subnets, an
// instance in each on different hosts that reach each other (packets),
// then everything deleted; the same objects are seen through ouro.
func TestEC2VPCWithAWSCLI(t *testing.T) {
	nc := newNetCloud(t, 2)
	var bb api.Image
	if err := nc.clientAs(nc.admin).Get(context.Background(), api.ImageKind, "default", "busybox", &bb); err != nil {
		t.Fatal(err)
	}
	img := &api.Image{Metadata: api.ObjectMeta{Name: "sleeper", Project: "default"}, Spec: bb.Spec}
	img.Spec.Public = false
	img.Spec.Config.Cmd = []string{"sh", "-c", "exec sleep 100000"}
	if _, err := nc.clientAs(nc.admin).Create(context.Background(), img, client.CreateOptions{}); err != nil {
		t.Fatalf("create image: %v", err)
	}
	cli := newAWSCLI(t, nc.cloud)
	aws := func(v any, args ...string) {
		t.Helper()
		if out, err := cli.awsIn(t, nc.netns, v, args...); err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var vpc struct{ Vpc struct{ VpcId string } }
	aws(&vpc, "ec2", "create-vpc", "--cidr-block", "10.80.0.0/16", "--tag-specifications", "ResourceType=vpc,Tags=[{Key=Name,Value=shop}]")
	subnets := map[string]string{}
	for name, cidr := range map[string]string{"front": "10.80.1.0/24", "back": "10.80.2.0/24"} {
		var s struct{ Subnet struct{ SubnetId string } }
		aws(&s, "ec2", "create-subnet", "--vpc-id", vpc.Vpc.VpcId, "--cidr-block", cidr,
			"--tag-specifications", "ResourceType=subnet,Tags=[{Key=Name,Value="+name+"}]")
		subnets[name] = s.Subnet.SubnetId
	}
	var sg struct{ GroupId string }
	aws(&sg, "ec2", "create-security-group", "--group-name", "pings", "--description", "icmp within the VPC", "--vpc-id", vpc.Vpc.VpcId)
	aws(nil, "ec2", "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "icmp", "--port", "-1", "--cidr", "10.80.0.0/16")

	// front on h1, back on h2.
	ids := map[string]string{}
	for name, host := range map[string]string{"front": "h1", "back": "h2"} {
		other := map[string]string{"h1": "h2", "h2": "h1"}[host]
		nc.setUnschedulable(other, true)
		var run struct{ Instances []struct{ InstanceId string } }
		aws(&run, "ec2", "run-instances", "--image-id", "sleeper", "--instance-type", "tiny", "--count", "1",
			"--subnet-id", subnets[name], "--security-group-ids", sg.GroupId,
			"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value="+name+"}]")
		ids[name] = run.Instances[0].InstanceId
		aws(nil, "ec2", "wait", "instance-running", "--instance-ids", ids[name])
		nc.setUnschedulable(other, false)
	}
	var desc struct {
		Reservations []struct {
			Instances []struct{ InstanceId, PrivateIpAddress, SubnetId, VpcId string }
		}
	}
	aws(&desc, "ec2", "describe-instances", "--filters", "Name=vpc-id,Values="+vpc.Vpc.VpcId)
	ips := map[string]string{}
	for _, r := range desc.Reservations {
		in := r.Instances[0]
		for name, id := range ids {
			if id == in.InstanceId && in.SubnetId == subnets[name] && in.VpcId == vpc.Vpc.VpcId {
				ips[name] = in.PrivateIpAddress
			}
		}
	}
	if len(ips) != 2 || !strings.HasPrefix(ips["front"], "10.80.1.") || !strings.HasPrefix(ips["back"], "10.80.2.") {
		t.Fatalf("describe-instances in the VPC: %+v", desc)
	}
	// Through ouro: the VPC, its subnets and the instances on them.
	if out := nc.ouro("network", "list"); !strings.Contains(out, "front") || !strings.Contains(out, "shop") {
		t.Errorf("ouro network list:\n%s", out)
	}
	names := map[string]string{}
	for _, in := range nc.listInstances("default") {
		for name, ip := range ips {
			if len(in.Status.Interfaces) > 0 && in.Status.Interfaces[0].IP == ip {
				names[name] = in.Metadata.Name
			}
		}
	}
	if len(names) != 2 {
		t.Fatalf("ouro does not see the instances at %v", ips)
	}
	nc.waitApplied()
	nc.waitPing("", names["front"], ips["back"])
	nc.waitPing("", names["back"], ips["front"])

	// DependencyViolation while in use; then everything goes.
	if out, err := cli.awsIn(t, nc.netns, nil, "ec2", "delete-vpc", "--vpc-id", vpc.Vpc.VpcId); err == nil || !strings.Contains(out, "DependencyViolation") {
		t.Errorf("delete-vpc with subnets: %v %s", err, out)
	}
	aws(nil, "ec2", "terminate-instances", "--instance-ids", ids["front"], ids["back"])
	wait.ForDetail(t, 90*time.Second, "instances gone", func() (bool, string) {
		n := len(nc.listInstances("default"))
		return n == 0, fmt.Sprint(n, " left")
	})
	aws(nil, "ec2", "delete-security-group", "--group-id", sg.GroupId)
	for _, s := range subnets {
		aws(nil, "ec2", "delete-subnet", "--subnet-id", s)
	}
	aws(nil, "ec2", "delete-vpc", "--vpc-id", vpc.Vpc.VpcId)
	if out, err := cli.awsIn(t, nc.netns, nil, "ec2", "describe-vpcs", "--vpc-ids", vpc.Vpc.VpcId); err == nil || !strings.Contains(out, "InvalidVpcID.NotFound") {
		t.Errorf("describe a deleted VPC: %v %s", err, out)
	}
}
