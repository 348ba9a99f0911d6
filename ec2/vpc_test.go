package ec2_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/ouroboros-cloud/ouro/api"
)

// TestTerraformVPC replays aws_vpc: CreateVpc, the created waiter,
// ModifyVpcAttribute for enable_dns_hostnames, then the read (the VPC,
// its attributes, main route table, default network ACL and default
// security group) twice, then DeleteVpc with its DependencyViolation
// branch and the deleted waiter.
func TestTerraformVPC(t *testing.T) {
	c := start(t)
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)

	created, err := ec.CreateVpc(ctx, &awsec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVpc,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("prod")}}}}})
	if err != nil {
		t.Fatalf("CreateVpc: %v", err)
	}
	id := aws.ToString(created.Vpc.VpcId)
	if created.Vpc.State != types.VpcStateAvailable || aws.ToString(created.Vpc.CidrBlock) != "10.0.0.0/16" {
		t.Fatalf("created VPC = %+v", created.Vpc)
	}
	v := c.Get(t, api.VPCKind, "default", "prod")
	if id != ec2ID("vpc", v) {
		t.Errorf("VPC id %s, want %s derived from its UID", id, ec2ID("vpc", v))
	}
	// waitVPCCreated.
	readVPC := func() types.Vpc {
		t.Helper()
		out, err := ec.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{VpcIds: []string{id}})
		if err != nil || len(out.Vpcs) != 1 {
			t.Fatalf("DescribeVpcs = %v, %v", out, err)
		}
		return out.Vpcs[0]
	}
	if readVPC().State != types.VpcStateAvailable {
		t.Fatal("the VPC is not available")
	}
	if _, err := ec.ModifyVpcAttribute(ctx, &awsec2.ModifyVpcAttributeInput{VpcId: &id,
		EnableDnsHostnames: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatalf("ModifyVpcAttribute: %v", err)
	}

	// resourceVPCRead, twice: nothing may change.
	type state struct {
		VPC                    types.Vpc
		DNSSupport, Hostnames  bool
		Metrics                bool
		MainRouteTable, ACL    string
		DefaultSecurityGroupID string
	}
	read := func() state {
		t.Helper()
		s := state{VPC: readVPC()}
		for _, a := range []types.VpcAttributeName{types.VpcAttributeNameEnableDnsSupport, types.VpcAttributeNameEnableDnsHostnames, types.VpcAttributeNameEnableNetworkAddressUsageMetrics} {
			out, err := ec.DescribeVpcAttribute(ctx, &awsec2.DescribeVpcAttributeInput{VpcId: &id, Attribute: a})
			if err != nil {
				t.Fatalf("DescribeVpcAttribute %s: %v", a, err)
			}
			switch a {
			case types.VpcAttributeNameEnableDnsSupport:
				s.DNSSupport = aws.ToBool(out.EnableDnsSupport.Value)
			case types.VpcAttributeNameEnableDnsHostnames:
				s.Hostnames = aws.ToBool(out.EnableDnsHostnames.Value)
			default:
				s.Metrics = aws.ToBool(out.EnableNetworkAddressUsageMetrics.Value)
			}
		}
		rts, err := ec.DescribeRouteTables(ctx, &awsec2.DescribeRouteTablesInput{Filters: []types.Filter{
			{Name: aws.String("association.main"), Values: []string{"true"}}, {Name: aws.String("vpc-id"), Values: []string{id}}}})
		if err != nil || len(rts.RouteTables) != 1 {
			t.Fatalf("DescribeRouteTables = %+v, %v", rts, err)
		}
		s.MainRouteTable = aws.ToString(rts.RouteTables[0].RouteTableId)
		acls, err := ec.DescribeNetworkAcls(ctx, &awsec2.DescribeNetworkAclsInput{Filters: []types.Filter{
			{Name: aws.String("default"), Values: []string{"true"}}, {Name: aws.String("vpc-id"), Values: []string{id}}}})
		if err != nil || len(acls.NetworkAcls) != 1 {
			t.Fatalf("DescribeNetworkAcls = %+v, %v", acls, err)
		}
		s.ACL = aws.ToString(acls.NetworkAcls[0].NetworkAclId)
		sgs, err := ec.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
			{Name: aws.String("group-name"), Values: []string{"default"}}, {Name: aws.String("vpc-id"), Values: []string{id}}}})
		if err != nil || len(sgs.SecurityGroups) != 1 {
			t.Fatalf("DescribeSecurityGroups of the VPC's default group = %+v, %v", sgs, err)
		}
		s.DefaultSecurityGroupID = aws.ToString(sgs.SecurityGroups[0].GroupId)
		return s
	}
	first, second := read(), read()
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second read differs:\n%+v\n%+v", first, second)
	}
	if !first.DNSSupport || !first.Hostnames || first.Metrics || aws.ToBool(first.VPC.IsDefault) ||
		len(first.VPC.Tags) != 1 || aws.ToString(first.VPC.OwnerId) != "default" || first.VPC.InstanceTenancy != types.TenancyDefault {
		t.Errorf("VPC read = %+v", first)
	}

	// Filters of the provider's data sources and of the AWS CLI.
	for _, f := range [][]types.Filter{
		{{Name: aws.String("vpc-id"), Values: []string{id}}},
		{{Name: aws.String("cidr"), Values: []string{"10.0.0.0/16"}}},
		{{Name: aws.String("tag:Name"), Values: []string{"pr*"}}},
		{{Name: aws.String("tag-key"), Values: []string{"Name"}}, {Name: aws.String("is-default"), Values: []string{"false"}}},
	} {
		out, err := ec.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{Filters: f})
		if err != nil || len(out.Vpcs) != 1 || aws.ToString(out.Vpcs[0].VpcId) != id {
			t.Errorf("DescribeVpcs filter %s: %+v, %v", aws.ToString(f[0].Name), out, err)
		}
	}
	def, err := ec.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}}})
	if err != nil || len(def.Vpcs) != 1 || aws.ToString(def.Vpcs[0].CidrBlock) != "172.31.0.0/16" {
		t.Errorf("default VPC: %+v, %v", def, err)
	}
	attrs, err := ec.DescribeAccountAttributes(ctx, &awsec2.DescribeAccountAttributesInput{AttributeNames: []types.AccountAttributeName{types.AccountAttributeNameDefaultVpc}})
	if err != nil || aws.ToString(attrs.AccountAttributes[0].AttributeValues[0].AttributeValue) != aws.ToString(def.Vpcs[0].VpcId) {
		t.Errorf("default-vpc attribute = %+v, %v; want %s", attrs, err, aws.ToString(def.Vpcs[0].VpcId))
	}
	_, err = ec.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}})
	wantCode(t, err, "InvalidParameterValue")

	// resourceVPCDelete: DependencyViolation while a subnet is left.
	sub, err := ec.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: &id, CidrBlock: aws.String("10.0.1.0/24")})
	if err != nil {
		t.Fatalf("CreateSubnet: %v", err)
	}
	_, err = ec.DeleteVpc(ctx, &awsec2.DeleteVpcInput{VpcId: &id})
	wantCode(t, err, "DependencyViolation")
	if _, err := ec.DeleteSubnet(ctx, &awsec2.DeleteSubnetInput{SubnetId: sub.Subnet.SubnetId}); err != nil {
		t.Fatalf("DeleteSubnet: %v", err)
	}
	if _, err := ec.DeleteVpc(ctx, &awsec2.DeleteVpcInput{VpcId: &id}); err != nil {
		t.Fatalf("DeleteVpc: %v", err)
	}
	// waitVPCDeleted.
	_, err = ec.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{VpcIds: []string{id}})
	wantCode(t, err, "InvalidVpcID.NotFound")
	_, err = ec.DeleteVpc(ctx, &awsec2.DeleteVpcInput{VpcId: &id})
	wantCode(t, err, "InvalidVpcID.NotFound")
}

// TestTerraformSubnet replays aws_subnet: CreateSubnet, the available
// waiter, ModifySubnetAttribute for map_public_ip_on_launch, the read
// twice, DeleteSubnet and the deleted waiter; and the refusals
// Terraform branches on.
func TestTerraformSubnet(t *testing.T) {
	c := start(t)
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	ctx := ctx(t)
	vpc, err := ec.CreateVpc(ctx, &awsec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16")})
	if err != nil {
		t.Fatalf("CreateVpc: %v", err)
	}
	vid := aws.ToString(vpc.Vpc.VpcId)

	created, err := ec.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: &vid, CidrBlock: aws.String("10.1.2.0/24"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSubnet,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("app")}, {Key: aws.String("tier"), Value: aws.String("back")}}}}})
	if err != nil {
		t.Fatalf("CreateSubnet: %v", err)
	}
	id := aws.ToString(created.Subnet.SubnetId)
	n := c.Get(t, api.NetworkKind, "default", "app").(*api.Network)
	if id != ec2ID("subnet", n) || n.Spec.VPC == "" || n.Spec.CIDR != "10.1.2.0/24" {
		t.Fatalf("subnet %s is network %+v", id, n)
	}
	read := func() types.Subnet {
		t.Helper()
		out, err := ec.DescribeSubnets(ctx, &awsec2.DescribeSubnetsInput{SubnetIds: []string{id}})
		if err != nil || len(out.Subnets) != 1 {
			t.Fatalf("DescribeSubnets = %v, %v", out, err)
		}
		return out.Subnets[0]
	}
	// waitSubnetAvailable.
	if s := read(); s.State != types.SubnetStateAvailable {
		t.Fatalf("subnet state %s", s.State)
	}
	if _, err := ec.ModifySubnetAttribute(ctx, &awsec2.ModifySubnetAttributeInput{SubnetId: &id,
		MapPublicIpOnLaunch: &types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatalf("ModifySubnetAttribute: %v", err)
	}
	first, second := read(), read()
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second read differs:\n%+v\n%+v", first, second)
	}
	if aws.ToString(first.VpcId) != vid || aws.ToString(first.CidrBlock) != "10.1.2.0/24" || !aws.ToBool(first.MapPublicIpOnLaunch) ||
		aws.ToBool(first.DefaultForAz) || aws.ToInt32(first.AvailableIpAddressCount) != 253 || len(first.Tags) != 2 ||
		aws.ToString(first.AvailabilityZone) == "" || first.PrivateDnsNameOptionsOnLaunch.HostnameType != types.HostnameTypeIpName {
		t.Errorf("subnet read = %+v", first)
	}
	for _, f := range [][]types.Filter{
		{{Name: aws.String("vpc-id"), Values: []string{vid}}},
		{{Name: aws.String("subnet-id"), Values: []string{id}}},
		{{Name: aws.String("cidr-block"), Values: []string{"10.1.2.0/24"}}},
		{{Name: aws.String("default-for-az"), Values: []string{"false"}}, {Name: aws.String("vpc-id"), Values: []string{vid}}},
		{{Name: aws.String("tag:tier"), Values: []string{"back"}}},
		{{Name: aws.String("tag-key"), Values: []string{"tier"}}},
	} {
		out, err := ec.DescribeSubnets(ctx, &awsec2.DescribeSubnetsInput{Filters: f})
		if err != nil || len(out.Subnets) != 1 || aws.ToString(out.Subnets[0].SubnetId) != id {
			t.Errorf("DescribeSubnets filter %s: %+v, %v", aws.ToString(f[0].Name), out, err)
		}
	}
	// The default VPC's subnet is the default network, default for its zone.
	def, err := ec.DescribeSubnets(ctx, &awsec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(def.Subnets) != 1 || aws.ToString(def.Subnets[0].CidrBlock) != "172.31.0.0/20" {
		t.Errorf("default subnet: %+v, %v", def, err)
	}
	// The route table's and network ACL's views of the subnet.
	acls, err := ec.DescribeNetworkAcls(ctx, &awsec2.DescribeNetworkAclsInput{Filters: []types.Filter{{Name: aws.String("association.subnet-id"), Values: []string{id}}}})
	if err != nil || len(acls.NetworkAcls) != 1 || aws.ToString(acls.NetworkAcls[0].VpcId) != vid {
		t.Errorf("network ACL of the subnet: %+v, %v", acls, err)
	}

	// Refusals.
	_, err = ec.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: &vid, CidrBlock: aws.String("10.1.2.128/25")})
	wantCode(t, err, "InvalidSubnet.Conflict")
	_, err = ec.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: &vid, CidrBlock: aws.String("10.9.0.0/24")})
	wantCode(t, err, "InvalidSubnet.Range")
	_, err = ec.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: aws.String("vpc-0123456789abcdef0"), CidrBlock: aws.String("10.1.3.0/24")})
	wantCode(t, err, "InvalidVpcID.NotFound")

	// resourceSubnetDelete, then waitSubnetDeleted.
	c.image(t, "default", "debian")
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: &id})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	if aws.ToString(run.Instances[0].VpcId) != vid || aws.ToString(run.Instances[0].SubnetId) != id {
		t.Errorf("instance in vpc %s subnet %s, want %s %s", aws.ToString(run.Instances[0].VpcId), aws.ToString(run.Instances[0].SubnetId), vid, id)
	}
	_, err = ec.DeleteSubnet(ctx, &awsec2.DeleteSubnetInput{SubnetId: &id})
	wantCode(t, err, "DependencyViolation")
	c.Remove(t, api.InstanceKind, "default", instanceName(t, c, *run.Instances[0].InstanceId))
	if _, err := ec.DeleteSubnet(ctx, &awsec2.DeleteSubnetInput{SubnetId: &id}); err != nil {
		t.Fatalf("DeleteSubnet: %v", err)
	}
	_, err = ec.DescribeSubnets(ctx, &awsec2.DescribeSubnetsInput{SubnetIds: []string{id}})
	wantCode(t, err, "InvalidSubnetID.NotFound")
	_, err = ec.DeleteSubnet(ctx, &awsec2.DeleteSubnetInput{SubnetId: &id})
	wantCode(t, err, "InvalidSubnetID.NotFound")
}

// TestVPCsOfOtherProjects: a key of project B sees no VPC or subnet of
// project A and cannot put a subnet in A's VPC.
func TestVPCsOfOtherProjects(t *testing.T) {
	c := start(t)
	ctx := ctx(t)
	a := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	vpc, err := a.CreateVpc(ctx, &awsec2.CreateVpcInput{CidrBlock: aws.String("10.2.0.0/16")})
	if err != nil {
		t.Fatalf("CreateVpc: %v", err)
	}
	c.Project(t, "other")
	b := c.ec2(c.key(t, "bob", "other", api.RoleMember))
	_, err = b.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{VpcIds: []string{aws.ToString(vpc.Vpc.VpcId)}})
	wantCode(t, err, "InvalidVpcID.NotFound")
	_, err = b.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.2.1.0/24")})
	wantCode(t, err, "InvalidVpcID.NotFound")
	_, err = b.DeleteVpc(ctx, &awsec2.DeleteVpcInput{VpcId: vpc.Vpc.VpcId})
	wantCode(t, err, "InvalidVpcID.NotFound")
	all, err := b.DescribeVpcs(ctx, &awsec2.DescribeVpcsInput{})
	if err != nil || len(all.Vpcs) != 1 || !aws.ToBool(all.Vpcs[0].IsDefault) {
		t.Errorf("project other sees %+v, %v; want its default VPC only", all, err)
	}
}

// TestVPCDNSAttributes: privateDnsName follows the VPC's
// enableDnsHostnames; DNS resolution cannot be turned off; a terminated
// instance, still shown as terminated, holds neither its subnet, its VPC
// nor its security group.
func TestVPCDNSAttributes(t *testing.T) {
	c := start(t)
	ctx := ctx(t)
	c.image(t, "default", "debian")
	ec := c.ec2(c.key(t, "alice", "default", api.RoleMember))
	vpc, err := ec.CreateVpc(ctx, &awsec2.CreateVpcInput{CidrBlock: aws.String("10.3.0.0/16")})
	if err != nil {
		t.Fatalf("CreateVpc: %v", err)
	}
	vid := aws.ToString(vpc.Vpc.VpcId)
	sub, err := ec.CreateSubnet(ctx, &awsec2.CreateSubnetInput{VpcId: &vid, CidrBlock: aws.String("10.3.1.0/24")})
	if err != nil {
		t.Fatalf("CreateSubnet: %v", err)
	}
	sg, err := ec.CreateSecurityGroup(ctx, &awsec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("web")})
	if err != nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	run, err := ec.RunInstances(ctx, &awsec2.RunInstancesInput{ImageId: aws.String("debian"), InstanceType: "tiny",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: sub.Subnet.SubnetId, SecurityGroupIds: []string{aws.ToString(sg.GroupId)}})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	name := instanceName(t, c, id)
	c.runAll(t, "default")
	var ip string
	dnsName := func() string {
		t.Helper()
		out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatalf("DescribeInstances: %v", err)
		}
		ip = aws.ToString(out.Reservations[0].Instances[0].PrivateIpAddress)
		return aws.ToString(out.Reservations[0].Instances[0].PrivateDnsName)
	}
	// AWS's ip-name: the name the subnet's DNS answers for the address.
	if dnsName(); ip == "" {
		t.Fatal("the instance has no private address")
	}
	ipName := "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ouro-1.compute.internal"
	setHostnames := func(on bool) {
		t.Helper()
		if _, err := ec.ModifyVpcAttribute(ctx, &awsec2.ModifyVpcAttributeInput{VpcId: &vid,
			EnableDnsHostnames: &types.AttributeBooleanValue{Value: aws.Bool(on)}}); err != nil {
			t.Fatalf("ModifyVpcAttribute: %v", err)
		}
	}
	for _, tt := range []struct {
		hostnames *bool
		want      string
	}{
		{nil, ""}, // a VPC other than the default has no DNS hostnames, as at AWS
		{aws.Bool(true), ipName},
		{aws.Bool(false), ""},
	} {
		if tt.hostnames != nil {
			setHostnames(*tt.hostnames)
		}
		if got := dnsName(); got != tt.want {
			t.Errorf("enableDnsHostnames %v: privateDnsName %q, want %q", tt.hostnames, got, tt.want)
		}
	}
	_, err = ec.ModifyVpcAttribute(ctx, &awsec2.ModifyVpcAttributeInput{VpcId: &vid,
		EnableDnsSupport: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	wantCode(t, err, "UnsupportedOperation")
	attr, err := ec.DescribeVpcAttribute(ctx, &awsec2.DescribeVpcAttributeInput{VpcId: &vid, Attribute: types.VpcAttributeNameEnableDnsSupport})
	if err != nil || !aws.ToBool(attr.EnableDnsSupport.Value) {
		t.Errorf("enableDnsSupport after the refusal = %+v, %v; want true", attr, err)
	}

	if _, err := ec.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("TerminateInstances: %v", err)
	}
	c.Remove(t, api.InstanceKind, "default", name)
	out, err := ec.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"terminated"}}}})
	if err != nil || len(out.Reservations) != 1 || aws.ToString(out.Reservations[0].Instances[0].InstanceId) != id {
		t.Fatalf("terminated instances = %+v, %v", out, err)
	}
	if _, err := ec.DeleteSecurityGroup(ctx, &awsec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); err != nil {
		t.Errorf("DeleteSecurityGroup after terminate: %v", err)
	}
	if _, err := ec.DeleteSubnet(ctx, &awsec2.DeleteSubnetInput{SubnetId: sub.Subnet.SubnetId}); err != nil {
		t.Errorf("DeleteSubnet after terminate: %v", err)
	}
	if _, err := ec.DeleteVpc(ctx, &awsec2.DeleteVpcInput{VpcId: &vid}); err != nil {
		t.Errorf("DeleteVpc after terminate: %v", err)
	}
}
