package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/ec2"
	"github.com/ouroboros-cloud/ouro/internal/testenv"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// importSleeper makes the image "sleeper": busybox whose own command
// keeps running, for RunInstances (which gives no command). It needs
// importBusybox first.
func (c *cloud) importSleeper() {
	c.t.Helper()
	var bb api.Image
	if err := c.clientAs(c.admin).Get(context.Background(), api.ImageKind, "default", "busybox", &bb); err != nil {
		c.t.Fatal(err)
	}
	img := &api.Image{Metadata: api.ObjectMeta{Name: "sleeper", Project: "default"}, Spec: bb.Spec}
	img.Spec.Public = false
	img.Spec.Config.Cmd = []string{"sh", "-c", "exec sleep 100000"}
	if _, err := c.clientAs(c.admin).Create(context.Background(), img, client.CreateOptions{}); err != nil {
		c.t.Fatalf("create image: %v", err)
	}
}

// awsCLI runs Debian's AWS CLI against a cloud's EC2-compatible API.
type awsCLI struct {
	c   *cloud
	bin string
	env []string
}

// newAWSCLI makes an access key with ouro credentials create and returns
// the AWS CLI set up with it, the cluster CA and the server's URL.
func newAWSCLI(t *testing.T, c *cloud) *awsCLI {
	t.Helper()
	bin := "/usr/bin/aws" // Debian's awscli package
	if _, err := os.Stat(bin); err != nil {
		bin = testenv.NeedBinary(t, "aws")
	}
	var key api.AccessKey
	if err := json.Unmarshal([]byte(c.ouro("credentials", "create", "-o", "json")), &key); err != nil || key.Status.Secret == "" {
		t.Fatalf("credentials create: %v %+v", err, key)
	}
	ca := filepath.Join(c.dir, "aws-ca.crt")
	if err := os.WriteFile(ca, c.ca, 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	return &awsCLI{c: c, bin: bin, env: []string{
		"HOME=" + home, "AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_ACCESS_KEY_ID=" + key.Spec.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + key.Status.Secret,
		"AWS_DEFAULT_REGION=ouro-1", "AWS_CA_BUNDLE=" + ca, "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1",
	}}
}

// run runs "aws --endpoint-url URL args... --output json" and returns its
// output; errors are returned, not fatal.
func (a *awsCLI) run(args ...string) (string, error) {
	argv := append([]string{"--endpoint-url", a.c.url, "--output", "json"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, argv...)
	cmd.Env = append(os.Environ(), a.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// must runs the CLI and decodes its JSON output into v (if not nil).
func (a *awsCLI) must(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := a.run(args...)
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("aws %s: %v in %q", strings.Join(args, " "), err, out)
		}
	}
}

// TestEC2AWSCLI drives the core flow with the real AWS CLI: a key pair, a
// security group with rules, two instances with user data seen running
// through describe-instances --filters, an elastic IP, stop and start,
// terminate and delete; the same objects are visible through ouro.
func TestEC2AWSCLI(t *testing.T) {
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.importSleeper()
	c.ouro("fip", "pool", "create", "ext", "--cidr", "198.51.100.0/24", "--range", "198.51.100.10-198.51.100.20")
	aws := newAWSCLI(t, c)

	var who struct{ Account, Arn string }
	aws.must(t, &who, "sts", "get-caller-identity")
	if who.Account != "default" || !strings.HasSuffix(who.Arn, ":user/admin") {
		t.Fatalf("get-caller-identity = %+v", who)
	}
	var images struct {
		Images []struct{ ImageId, Name string }
	}
	aws.must(t, &images, "ec2", "describe-images", "--filters", "Name=name,Values=sleeper")
	if len(images.Images) != 1 {
		t.Fatalf("describe-images = %+v", images)
	}
	ami := images.Images[0].ImageId

	pub := filepath.Join(c.dir, "key.pub")
	os.WriteFile(pub, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ3Lm9v0XzLJm8S2qsZ4Kx4r4QZ5v1O6Q6Kc2J9u1aT e2e\n"), 0o600)
	aws.must(t, nil, "ec2", "import-key-pair", "--key-name", "deployer", "--public-key-material", "fileb://"+pub)
	var sg struct{ GroupId string }
	aws.must(t, &sg, "ec2", "create-security-group", "--group-name", "web", "--description", "web servers")
	aws.must(t, nil, "ec2", "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0")
	aws.must(t, nil, "ec2", "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "icmp", "--port", "-1", "--cidr", "10.0.0.0/8")
	if out, err := aws.run("ec2", "authorize-security-group-ingress", "--group-id", sg.GroupId, "--protocol", "tcp", "--port", "22", "--cidr", "0.0.0.0/0"); err == nil || !strings.Contains(out, "InvalidPermission.Duplicate") {
		t.Errorf("a duplicate rule: %v %s", err, out)
	}

	var run struct {
		Instances []struct{ InstanceId string }
	}
	aws.must(t, &run, "ec2", "run-instances", "--image-id", ami, "--instance-type", "tiny", "--count", "2",
		"--key-name", "deployer", "--security-group-ids", sg.GroupId, "--user-data", "#!/bin/sh\necho hello\n",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=Owner,Value=Ada Lovelace (ops)}]")
	if len(run.Instances) != 2 {
		t.Fatalf("run-instances made %d instances", len(run.Instances))
	}
	ids := []string{run.Instances[0].InstanceId, run.Instances[1].InstanceId}
	aws.must(t, nil, "ec2", "wait", "instance-running", "--instance-ids", ids[0], ids[1])
	var desc struct {
		Reservations []struct {
			Instances []struct {
				InstanceId, PrivateIpAddress, PublicIpAddress string
				State                                         struct{ Name string }
			}
		}
	}
	aws.must(t, &desc, "ec2", "describe-instances", "--filters", "Name=instance-state-name,Values=running", "Name=tag:Name,Values=web",
		"Name=tag:Owner,Values=Ada Lovelace (ops)")
	if len(desc.Reservations) != 2 {
		t.Fatalf("describe-instances --filters found %d running", len(desc.Reservations))
	}
	for _, r := range desc.Reservations {
		if in := r.Instances[0]; in.PrivateIpAddress == "" || !slices.Contains(ids, in.InstanceId) {
			t.Errorf("instance %+v", in)
		}
	}

	// The same instances through ouro, with the key, group and user data.
	items := c.listInstances("default")
	if len(items) != 2 {
		t.Fatalf("ouro sees %d instances", len(items))
	}
	for _, in := range items {
		if in.Spec.KeyName != "deployer" || in.Spec.UserData != "#!/bin/sh\necho hello\n" || in.Spec.Networks[0].SecurityGroups[0] != "web" || in.Metadata.Labels["Name"] != "web" ||
			in.Metadata.Annotations["tag.ec2.ouro.dev/Owner"] != "Ada Lovelace (ops)" {
			t.Errorf("instance %s: %+v", in.Metadata.Name, in.Spec)
		}
	}
	if out := c.ouro("securitygroup", "get", "web", "-o", "json"); !strings.Contains(out, `"portMin": 22`) {
		t.Errorf("ouro securitygroup get web:\n%s", out)
	}

	var alloc struct{ AllocationId, PublicIp string }
	aws.must(t, &alloc, "ec2", "allocate-address", "--domain", "vpc")
	var assoc struct{ AssociationId string }
	aws.must(t, &assoc, "ec2", "associate-address", "--allocation-id", alloc.AllocationId, "--instance-id", ids[0])
	wait.ForDetail(t, 30*time.Second, "public address", func() (bool, string) {
		out, _ := aws.run("ec2", "describe-instances", "--instance-ids", ids[0])
		return strings.Contains(out, alloc.PublicIp), out
	})
	if out := c.ouro("fip", "list"); !strings.Contains(out, alloc.PublicIp) {
		t.Errorf("ouro fip list:\n%s", out)
	}

	aws.must(t, nil, "ec2", "stop-instances", "--instance-ids", ids[1])
	aws.must(t, nil, "ec2", "wait", "instance-stopped", "--instance-ids", ids[1])
	aws.must(t, nil, "ec2", "start-instances", "--instance-ids", ids[1])
	aws.must(t, nil, "ec2", "wait", "instance-running", "--instance-ids", ids[1])

	aws.must(t, nil, "ec2", "disassociate-address", "--association-id", assoc.AssociationId)
	aws.must(t, nil, "ec2", "release-address", "--allocation-id", alloc.AllocationId)
	// One instance is terminated through EC2, the other deleted through
	// ouro: both are terminated to the AWS CLI's waiter once gone.
	aws.must(t, nil, "ec2", "terminate-instances", "--instance-ids", ids[0])
	for _, in := range items {
		if ec2.ID(ec2.PrefixInstance, in.Metadata.UID) == ids[1] {
			c.ouro("instance", "delete", in.Metadata.Name)
		}
	}
	wait.ForDetail(t, 90*time.Second, "instances gone", func() (bool, string) {
		n := len(c.listInstances("default"))
		return n == 0, strings.Repeat("i", n)
	})
	aws.must(t, nil, "ec2", "wait", "instance-terminated", "--instance-ids", ids[0], ids[1])
	aws.must(t, nil, "ec2", "delete-security-group", "--group-id", sg.GroupId)
	aws.must(t, nil, "ec2", "delete-key-pair", "--key-name", "deployer")
	if out, err := aws.run("ec2", "describe-security-groups", "--group-ids", sg.GroupId); err == nil || !strings.Contains(out, "InvalidGroup.NotFound") {
		t.Errorf("describe a deleted group: %v %s", err, out)
	}
	if out := c.ouro("keypair", "list"); strings.Contains(out, "deployer") {
		t.Errorf("ouro keypair list after delete:\n%s", out)
	}
}
