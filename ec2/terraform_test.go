package ec2_test

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ouroboros-cloud/ouro/api"
)

// These tests replay, call for call, what Terraform's AWS provider does
// for its resources: create, read, read again (nothing may change),
// delete, with its waiters and the error codes it branches on.

const testPublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ3Lm9v0XzLJm8S2qsZ4Kx4r4QZ5v1O6Q6Kc2J9u1aT test@example"

func TestTerraformSecurityGroup(t *testing.T) {
	c := start(t)
	k := c.key(t, "alice", "default", api.RoleMember)
	ec := c.ec2(k)
	ctx := ctx(t)

	// resourceSecurityGroupCreate.
	created, err := ec.CreateSecurityGroup(ctx, &awsec2.CreateSecurityGroupInput{
		GroupName: aws.String("web"), Description: aws.String("Managed by Terraform"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}}}},
	})
	if err != nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	id := aws.ToString(created.GroupId)
	// waitSecurityGroupCreated.
	read := func() types.SecurityGroup {
		t.Helper()
		out, err := ec.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
		if err != nil || len(out.SecurityGroups) != 1 {
			t.Fatalf("DescribeSecurityGroups = %v, %v", out, err)
		}
		return out.SecurityGroups[0]
	}
	g := read()
	if len(g.IpPermissionsEgress) != 1 || aws.ToString(g.IpPermissionsEgress[0].IpProtocol) != "-1" ||
		aws.ToString(g.IpPermissionsEgress[0].IpRanges[0].CidrIp) != "0.0.0.0/0" {
		t.Fatalf("a new group's egress = %+v, want the allow-all rule", g.IpPermissionsEgress)
	}
	// The provider revokes the default egress rule, then authorizes the
	// configured rules.
	allEgress := []types.IpPermission{{IpProtocol: aws.String("-1"), FromPort: aws.Int32(0), ToPort: aws.Int32(0),
		IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}
	if _, err := ec.RevokeSecurityGroupEgress(ctx, &awsec2.RevokeSecurityGroupEgressInput{GroupId: &id, IpPermissions: allEgress}); err != nil {
		t.Fatalf("RevokeSecurityGroupEgress: %v", err)
	}
	_, err = ec.RevokeSecurityGroupEgress(ctx, &awsec2.RevokeSecurityGroupEgressInput{GroupId: &id, IpPermissions: allEgress})
	wantCode(t, err, "InvalidPermission.NotFound")
	ingress := []types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}, {CidrIp: aws.String("192.168.0.0/16")}}},
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(0), ToPort: aws.Int32(65535), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: &id}}},
		{IpProtocol: aws.String("icmp"), FromPort: aws.Int32(-1), ToPort: aws.Int32(-1), IpRanges: []types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}},
	}
	if _, err := ec.AuthorizeSecurityGroupIngress(ctx, &awsec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, IpPermissions: ingress}); err != nil {
		t.Fatalf("AuthorizeSecurityGroupIngress: %v", err)
	}
	_, err = ec.AuthorizeSecurityGroupIngress(ctx, &awsec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, IpPermissions: ingress[:1]})
	wantCode(t, err, "InvalidPermission.Duplicate")
	if _, err := ec.AuthorizeSecurityGroupEgress(ctx, &awsec2.AuthorizeSecurityGroupEgressInput{GroupId: &id, IpPermissions: allEgress}); err != nil {
		t.Fatalf("AuthorizeSecurityGroupEgress: %v", err)
	}
	// resourceSecurityGroupRead, twice: nothing may change.
	first, second := read(), read()
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second read differs:\n%+v\n%+v", first, second)
	}
	if aws.ToString(first.GroupName) != "web" || aws.ToString(first.Description) != "Managed by Terraform" || aws.ToString(first.VpcId) == "" ||
		aws.ToString(first.OwnerId) != "default" || len(first.Tags) != 1 {
		t.Errorf("group = %+v", first)
	}
	if len(first.IpPermissions) != 3 || len(first.IpPermissions[0].IpRanges) != 2 || aws.ToInt32(first.IpPermissions[1].FromPort) != 0 ||
		aws.ToString(first.IpPermissions[1].UserIdGroupPairs[0].GroupId) != id {
		t.Errorf("ingress = %+v", first.IpPermissions)
	}
	// The filters the provider's data sources send.
	for _, f := range []types.Filter{
		{Name: aws.String("group-name"), Values: []string{"web"}},
		{Name: aws.String("group-id"), Values: []string{id}},
		{Name: aws.String("tag:Name"), Values: []string{"w*"}},
		{Name: aws.String("tag-key"), Values: []string{"Name"}},
	} {
		out, err := ec.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{Filters: []types.Filter{f,
			{Name: aws.String("vpc-id"), Values: []string{aws.ToString(first.VpcId)}}}})
		if err != nil || len(out.SecurityGroups) != 1 {
			t.Errorf("filter %s: %v, %v", *f.Name, out, err)
		}
	}
	_, err = ec.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}})
	wantCode(t, err, "InvalidParameterValue")

	// resourceSecurityGroupDelete: DependencyViolation while in use.
	c.image(t, "default", "debian")
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SecurityGroupIds: []string{id}})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	_, err = ec.DeleteSecurityGroup(ctx, &awsec2.DeleteSecurityGroupInput{GroupId: &id})
	wantCode(t, err, "DependencyViolation")
	c.Remove(t, api.InstanceKind, "default", instanceName(t, c, *run.Instances[0].InstanceId))
	if _, err := ec.DeleteSecurityGroup(ctx, &awsec2.DeleteSecurityGroupInput{GroupId: &id}); err != nil {
		t.Fatalf("DeleteSecurityGroup: %v", err)
	}
	_, err = ec.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{GroupIds: []string{id}})
	wantCode(t, err, "InvalidGroup.NotFound")
	_, err = ec.DeleteSecurityGroup(ctx, &awsec2.DeleteSecurityGroupInput{GroupId: &id})
	wantCode(t, err, "InvalidGroup.NotFound")
}

// instanceName finds the name of the instance with EC2 id id.
func instanceName(t *testing.T, c *cloud, id string) string {
	t.Helper()
	objs, _, err := c.Store.List(t.Context(), api.InstanceKind, "default", storeAll)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if ec2ID("i", o) == id {
			return o.Meta().Name
		}
	}
	t.Fatalf("no instance %s", id)
	return ""
}

func TestTerraformKeyPair(t *testing.T) {
	c := start(t)
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	imp, err := ec.ImportKeyPair(ctx, &awsec2.ImportKeyPairInput{KeyName: aws.String("deployer"), PublicKeyMaterial: []byte(testPublicKey),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ops")}}}}})
	if err != nil {
		t.Fatalf("ImportKeyPair: %v", err)
	}
	_, err = ec.ImportKeyPair(ctx, &awsec2.ImportKeyPairInput{KeyName: aws.String("deployer"), PublicKeyMaterial: []byte(testPublicKey)})
	wantCode(t, err, "InvalidKeyPair.Duplicate")
	read := func() types.KeyPairInfo {
		out, err := ec.DescribeKeyPairs(ctx, &awsec2.DescribeKeyPairsInput{KeyNames: []string{"deployer"}, IncludePublicKey: aws.Bool(true)})
		if err != nil || len(out.KeyPairs) != 1 {
			t.Fatalf("DescribeKeyPairs = %v, %v", out, err)
		}
		return out.KeyPairs[0]
	}
	first, second := read(), read()
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second read differs")
	}
	if aws.ToString(first.KeyPairId) != aws.ToString(imp.KeyPairId) || aws.ToString(first.KeyFingerprint) != aws.ToString(imp.KeyFingerprint) ||
		first.KeyType != types.KeyTypeEd25519 || aws.ToString(first.PublicKey) != testPublicKey[:len(testPublicKey)] || len(first.Tags) != 1 {
		t.Errorf("key = %+v", first)
	}
	out, err := ec.DescribeKeyPairs(ctx, &awsec2.DescribeKeyPairsInput{Filters: []types.Filter{{Name: aws.String("key-pair-id"), Values: []string{*imp.KeyPairId}}}})
	if err != nil || len(out.KeyPairs) != 1 {
		t.Errorf("filter key-pair-id: %v, %v", out, err)
	}
	made, err := ec.CreateKeyPair(ctx, &awsec2.CreateKeyPairInput{KeyName: aws.String("made"), KeyType: types.KeyTypeEd25519})
	if err != nil || len(aws.ToString(made.KeyMaterial)) < 100 {
		t.Fatalf("CreateKeyPair = %v, %v", made, err)
	}
	if _, err := ec.DeleteKeyPair(ctx, &awsec2.DeleteKeyPairInput{KeyPairId: imp.KeyPairId}); err != nil {
		t.Fatalf("DeleteKeyPair: %v", err)
	}
	_, err = ec.DescribeKeyPairs(ctx, &awsec2.DescribeKeyPairsInput{KeyNames: []string{"deployer"}})
	wantCode(t, err, "InvalidKeyPair.NotFound")
}

func TestTerraformInstance(t *testing.T) {
	c := start(t)
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	c.image(t, "default", "debian")
	imgs, err := ec.DescribeImages(ctx, &awsec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"deb*"}}}, Owners: []string{"self"}})
	if err != nil || len(imgs.Images) != 1 {
		t.Fatalf("DescribeImages = %v, %v", imgs, err)
	}
	if _, err := ec.ImportKeyPair(ctx, &awsec2.ImportKeyPairInput{KeyName: aws.String("deployer"), PublicKeyMaterial: []byte(testPublicKey)}); err != nil {
		t.Fatal(err)
	}
	types_, err := ec.DescribeInstanceTypes(ctx, &awsec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{"small"}})
	if err != nil || len(types_.InstanceTypes) != 1 || aws.ToInt64(types_.InstanceTypes[0].MemoryInfo.SizeInMiB) != 512 {
		t.Fatalf("DescribeInstanceTypes = %v, %v", types_, err)
	}
	userData := base64.StdEncoding.EncodeToString([]byte("#cloud-config\nruncmd: [touch /ok]\n"))
	// A tag of free text, as Terraform files often have, beside one a
	// label can hold.
	webTags := []types.Tag{{Key: aws.String("Name"), Value: aws.String("web")}, {Key: aws.String("Description"), Value: aws.String("Front web server (blue)")}}
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{
		ImageId: imgs.Images[0].ImageId, InstanceType: "small", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String("deployer"), UserData: &userData, ClientToken: aws.String("terraform-1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: webTags}},
	})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	if len(id) != 19 || run.Instances[0].State.Name != types.InstanceStateNamePending {
		t.Fatalf("instance %s is %v", id, run.Instances[0].State)
	}
	// A retry with the same ClientToken finds the same instance.
	again, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{
		ImageId: imgs.Images[0].ImageId, InstanceType: "small", MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String("deployer"), UserData: &userData, ClientToken: aws.String("terraform-1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: webTags}},
	})
	if err != nil || aws.ToString(again.Instances[0].InstanceId) != id {
		t.Fatalf("RunInstances again = %v, %v", again, err)
	}
	// waitInstanceCreated: pending until the agent reports it running.
	c.runAll(t, "default")
	w := awsec2.NewInstanceRunningWaiter(ec, func(o *awsec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Millisecond, 10*time.Millisecond
	})
	if err := w.Wait(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatalf("InstanceRunningWaiter: %v", err)
	}
	read := func() (types.Instance, []string) {
		out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil || len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
			t.Fatalf("DescribeInstances = %v, %v", out, err)
		}
		var attrs []string
		for _, a := range []types.InstanceAttributeName{"disableApiTermination", "disableApiStop", "instanceInitiatedShutdownBehavior", "userData"} {
			out, err := ec.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{InstanceId: &id, Attribute: a})
			if err != nil {
				t.Fatalf("DescribeInstanceAttribute %s: %v", a, err)
			}
			switch a {
			case "disableApiTermination":
				attrs = append(attrs, fmt.Sprint(aws.ToBool(out.DisableApiTermination.Value)))
			case "disableApiStop":
				attrs = append(attrs, fmt.Sprint(aws.ToBool(out.DisableApiStop.Value)))
			case "instanceInitiatedShutdownBehavior":
				attrs = append(attrs, aws.ToString(out.InstanceInitiatedShutdownBehavior.Value))
			case "userData":
				attrs = append(attrs, aws.ToString(out.UserData.Value))
			}
		}
		cs, err := ec.DescribeInstanceCreditSpecifications(ctx, &awsec2.DescribeInstanceCreditSpecificationsInput{InstanceIds: []string{id}})
		if err != nil || len(cs.InstanceCreditSpecifications) != 1 {
			t.Fatalf("DescribeInstanceCreditSpecifications = %v, %v", cs, err)
		}
		vols, err := ec.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{id}}}})
		if err != nil || len(vols.Volumes) != 0 {
			t.Fatalf("DescribeVolumes = %v, %v", vols, err)
		}
		return out.Reservations[0].Instances[0], attrs
	}
	first, firstAttrs := read()
	second, secondAttrs := read()
	if !reflect.DeepEqual(first, second) || !reflect.DeepEqual(firstAttrs, secondAttrs) {
		t.Errorf("second read differs:\n%+v\n%+v", first, second)
	}
	if first.State.Name != types.InstanceStateNameRunning || aws.ToInt32(first.State.Code) != 16 || aws.ToString(first.KeyName) != "deployer" ||
		first.InstanceType != "small" || aws.ToString(first.PrivateIpAddress) == "" || aws.ToString(first.SubnetId) == "" ||
		aws.ToString(first.ImageId) != aws.ToString(imgs.Images[0].ImageId) || len(first.SecurityGroups) != 1 ||
		aws.ToString(first.Placement.AvailabilityZone) != api.ZoneDefault || len(first.Tags) != 2 {
		t.Errorf("instance = %+v", first)
	}
	if firstAttrs[0] != "false" || firstAttrs[2] != "stop" || firstAttrs[3] != userData {
		t.Errorf("attributes = %v", firstAttrs)
	}
	// disable_api_termination = true, then false again.
	if _, err := ec.ModifyInstanceAttribute(ctx, &awsec2.ModifyInstanceAttributeInput{InstanceId: &id, DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatalf("ModifyInstanceAttribute: %v", err)
	}
	_, err = ec.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "OperationNotPermitted")
	if _, err := ec.ModifyInstanceAttribute(ctx, &awsec2.ModifyInstanceAttributeInput{InstanceId: &id, DisableApiTermination: &types.AttributeBooleanValue{Value: aws.Bool(false)}}); err != nil {
		t.Fatalf("ModifyInstanceAttribute: %v", err)
	}
	// The filters the provider and the CLI send.
	for _, f := range []types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
		{Name: aws.String("tag:Name"), Values: []string{"web"}},
		{Name: aws.String("tag:Description"), Values: []string{"Front web server (blue)"}},
		{Name: aws.String("tag-key"), Values: []string{"Description"}},
		{Name: aws.String("subnet-id"), Values: []string{*first.SubnetId}},
		{Name: aws.String("instance.group-id"), Values: []string{*first.SecurityGroups[0].GroupId}},
	} {
		out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{Filters: []types.Filter{f}})
		if err != nil || len(out.Reservations) != 1 {
			t.Errorf("filter %s: %v, %v", *f.Name, out, err)
		}
	}
	// Stop and start.
	stop, err := ec.StopInstances(ctx, &awsec2.StopInstancesInput{InstanceIds: []string{id}})
	if err != nil || stop.StoppingInstances[0].CurrentState.Name != types.InstanceStateNameStopping {
		t.Fatalf("StopInstances = %v, %v", stop, err)
	}
	c.runAll(t, "default")
	if err := awsec2.NewInstanceStoppedWaiter(ec, func(o *awsec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Millisecond, 10*time.Millisecond
	}).
		Wait(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatalf("InstanceStoppedWaiter: %v", err)
	}
	if _, err := ec.StartInstances(ctx, &awsec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("StartInstances: %v", err)
	}
	// resourceInstanceDelete: terminate, then wait until it is gone.
	term, err := ec.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil || term.TerminatingInstances[0].CurrentState.Name != types.InstanceStateNameShuttingDown {
		t.Fatalf("TerminateInstances = %v, %v", term, err)
	}
	c.Remove(t, api.InstanceKind, "default", instanceName(t, c, id))
	// Gone, it stays visible as terminated (48), as at AWS, for the
	// waiter Terraform's delete uses.
	if err := awsec2.NewInstanceTerminatedWaiter(ec, func(o *awsec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = time.Millisecond, 10*time.Millisecond
	}).Wait(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}}, 10*time.Second); err != nil {
		t.Fatalf("InstanceTerminatedWaiter: %v", err)
	}
	for _, in := range []*awsec2.DescribeInstancesInput{
		{InstanceIds: []string{id}},
		{Filters: []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"terminated"}}}},
	} {
		d, err := ec.DescribeInstances(ctx, in)
		if err != nil || len(d.Reservations) != 1 {
			t.Fatalf("DescribeInstances(%v) = %+v, %v; want the terminated instance", in, d, err)
		}
		got := d.Reservations[0].Instances[0]
		if aws.ToString(got.InstanceId) != id || got.State.Name != types.InstanceStateNameTerminated || aws.ToInt32(got.State.Code) != 48 ||
			aws.ToString(got.StateReason.Code) != "Client.UserInitiatedShutdown" || len(got.NetworkInterfaces) != 0 ||
			!reflect.DeepEqual(got.Tags, first.Tags) {
			t.Errorf("terminated instance = %+v", got)
		}
	}
	reterm, err := ec.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil || reterm.TerminatingInstances[0].CurrentState.Name != types.InstanceStateNameTerminated ||
		reterm.TerminatingInstances[0].PreviousState.Name != types.InstanceStateNameTerminated {
		t.Errorf("TerminateInstances of a terminated instance = %+v, %v; want terminated → terminated", reterm, err)
	}
	_, err = ec.StopInstances(ctx, &awsec2.StopInstancesInput{InstanceIds: []string{id}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	d, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}})
	if err != nil || len(d.Reservations) != 0 {
		t.Errorf("running instances after terminate: %+v, %v", d, err)
	}
	// An id no instance ever had is still not found.
	_, err = ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id[:len(id)-1] + "f"}})
	if id[len(id)-1] == 'f' {
		_, err = ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id[:len(id)-1] + "e"}})
	}
	wantCode(t, err, "InvalidInstanceID.NotFound")
}

func TestTerraformEIP(t *testing.T) {
	c := start(t)
	c.pool(t)
	c.image(t, "default", "debian")
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny", MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	c.runAll(t, "default")
	iid := aws.ToString(run.Instances[0].InstanceId)
	alloc, err := ec.AllocateAddress(ctx, &awsec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
	if err != nil {
		t.Fatalf("AllocateAddress: %v", err)
	}
	aid := aws.ToString(alloc.AllocationId)
	assoc, err := ec.AssociateAddress(ctx, &awsec2.AssociateAddressInput{AllocationId: &aid, InstanceId: &iid})
	if err != nil {
		t.Fatalf("AssociateAddress: %v", err)
	}
	read := func() types.Address {
		out, err := ec.DescribeAddresses(ctx, &awsec2.DescribeAddressesInput{AllocationIds: []string{aid}})
		if err != nil || len(out.Addresses) != 1 {
			t.Fatalf("DescribeAddresses = %v, %v", out, err)
		}
		return out.Addresses[0]
	}
	first, second := read(), read()
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second read differs")
	}
	if aws.ToString(first.InstanceId) != iid || aws.ToString(first.AssociationId) != aws.ToString(assoc.AssociationId) ||
		aws.ToString(first.PublicIp) != aws.ToString(alloc.PublicIp) || first.Domain != types.DomainTypeVpc || aws.ToString(first.PrivateIpAddress) == "" {
		t.Errorf("address = %+v", first)
	}
	inst, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{iid}})
	if err != nil || aws.ToString(inst.Reservations[0].Instances[0].PublicIpAddress) != aws.ToString(alloc.PublicIp) {
		t.Errorf("instance's public address = %v, %v", inst, err)
	}
	_, err = ec.ReleaseAddress(ctx, &awsec2.ReleaseAddressInput{AllocationId: &aid})
	wantCode(t, err, "InvalidIPAddress.InUse")
	if _, err := ec.DisassociateAddress(ctx, &awsec2.DisassociateAddressInput{AssociationId: assoc.AssociationId}); err != nil {
		t.Fatalf("DisassociateAddress: %v", err)
	}
	_, err = ec.DisassociateAddress(ctx, &awsec2.DisassociateAddressInput{AssociationId: assoc.AssociationId})
	wantCode(t, err, "InvalidAssociationID.NotFound")
	if _, err := ec.ReleaseAddress(ctx, &awsec2.ReleaseAddressInput{AllocationId: &aid}); err != nil {
		t.Fatalf("ReleaseAddress: %v", err)
	}
	_, err = ec.DescribeAddresses(ctx, &awsec2.DescribeAddressesInput{AllocationIds: []string{aid}})
	wantCode(t, err, "InvalidAllocationID.NotFound")
}
