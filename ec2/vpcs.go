package ec2

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// VPCs are api.VPC objects: "vpc-" ids derived from their UIDs, names
// from the Name tag (else "vpc-" and 8 random hex digits). A VPC's main
// route table and default network ACL are its status, shown with ids
// derived from the VPC's UID ("rtb-", "acl-"). The project's security
// group "default" is the default group of every VPC of the project:
// security groups are project-wide, whatever network their members are
// on.

// Id prefixes of the VPCs' parts.
const (
	PrefixRouteTable      = "rtb"
	PrefixRouteTableAssoc = "rtbassoc"
	PrefixNetworkACL      = "acl"
	PrefixNetworkACLAssoc = "aclassoc"
	PrefixCIDRAssoc       = "vpc-cidr-assoc"
	PrefixNATGateway      = "nat"
)

func init() {
	// Networks and groups name their VPC by its object from now on (the
	// framework's stand-in was one VPC per project).
	vpcIDOf = networkVPCID
	groupVPC = func(c *Call, g *api.SecurityGroup) string { return defaultVPCID(c, g.Metadata.Project) }
	groupVPCs = projectVPCIDs
	checkVPC = func(c *Call, id string) error {
		if id == "" {
			return nil
		}
		_, err := c.vpcByID(id)
		return err
	}
	addTaggable(PrefixVPC, "vpc", api.VPCKind)
	register(ec2API,
		Action{Name: "CreateVpc", Params: params(dryRun, tagSpecParams, []string{"CidrBlock", "InstanceTenancy", "AmazonProvidedIpv6CidrBlock"}), Run: createVPC},
		Action{Name: "DescribeVpcs", Params: params(dryRun, filters, paging, []string{"VpcId.N"}), Run: describeVPCs},
		Action{Name: "DeleteVpc", Params: params(dryRun, []string{"VpcId"}), Run: deleteVPC},
		Action{Name: "DescribeVpcAttribute", Params: params(dryRun, []string{"VpcId", "Attribute"}), Run: describeVPCAttribute},
		Action{Name: "ModifyVpcAttribute", Params: params([]string{"VpcId", "EnableDnsSupport.Value", "EnableDnsHostnames.Value", "EnableNetworkAddressUsageMetrics.Value"}), Run: modifyVPCAttribute},
		Action{Name: "DescribeRouteTables", Params: params(dryRun, filters, paging, []string{"RouteTableId.N"}), Run: describeRouteTables},
		Action{Name: "DescribeNetworkAcls", Params: params(dryRun, filters, paging, []string{"NetworkAclId.N"}), Run: describeNetworkACLs},
	)
}

// vpcID is the EC2 id of a VPC.
func vpcID(v *api.VPC) string { return idOf(PrefixVPC, v) }

// networkVPCID is the EC2 id of a network's VPC; a network in no VPC
// answers the id the framework gave every network before VPCs (it is
// the subnet of no VPC that DescribeVpcs lists).
func networkVPCID(c *Call, n *api.Network) string {
	if n.Status.VPCUID == "" {
		return ID(PrefixVPC, "project/"+n.Metadata.Project)
	}
	return ID(PrefixVPC, n.Status.VPCUID)
}

// defaultVPCID is the id of the project's default VPC, or the stand-in
// id when it has none.
func defaultVPCID(c *Call, project string) string {
	var v api.VPC
	if err := c.h.cfg.Store.Get(c.ctx, api.VPCKind, project, admission.DefaultVPCName, &v); err != nil {
		return ID(PrefixVPC, "project/"+project)
	}
	return vpcID(&v)
}

// projectVPCIDs are the ids of every VPC of the group's project when g
// is the project's default group (the default group of each VPC), else
// of its one VPC: what the vpc-id filter of DescribeSecurityGroups
// compares.
func projectVPCIDs(c *Call, g *api.SecurityGroup) []string {
	if g.Metadata.Name != admission.DefaultGroupName {
		return []string{groupVPC(c, g)}
	}
	objs, err := c.list(api.VPCKind, nil)
	if err != nil || len(objs) == 0 {
		return []string{groupVPC(c, g)}
	}
	ids := make([]string, len(objs))
	for i, o := range objs {
		ids[i] = vpcID(o.(*api.VPC))
	}
	return ids
}

func vpcNotFound(id string) *Error {
	return notFound("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", clip(id))
}

// vpcByID finds a VPC of the project by id.
func (c *Call) vpcByID(id string) (*api.VPC, error) {
	o, err := c.find(api.VPCKind, PrefixVPC, id, vpcNotFound(id))
	if err != nil {
		return nil, err
	}
	return o.(*api.VPC), nil
}

// randomName is prefix, '-' and 8 random hex digits: the name of an
// object made through EC2 without a usable Name tag.
func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

type cidrState struct {
	State string `xml:"state"`
}

type cidrAssociation struct {
	AssociationID string    `xml:"associationId"`
	CidrBlock     string    `xml:"cidrBlock"`
	State         cidrState `xml:"cidrBlockState"`
}

type vpcItem struct {
	VpcID           string            `xml:"vpcId"`
	OwnerID         string            `xml:"ownerId"`
	State           string            `xml:"state"`
	CidrBlock       string            `xml:"cidrBlock"`
	CidrAssocs      []cidrAssociation `xml:"cidrBlockAssociationSet>item"`
	IPv6CidrAssocs  []struct{}        `xml:"ipv6CidrBlockAssociationSet>item"`
	DhcpOptionsID   string            `xml:"dhcpOptionsId"`
	InstanceTenancy string            `xml:"instanceTenancy"`
	IsDefault       bool              `xml:"isDefault"`
	TagSet          []Tag             `xml:"tagSet>item"`
	labels          map[string]string
}

func vpcOf(v *api.VPC) vpcItem {
	return vpcItem{
		VpcID: vpcID(v), OwnerID: v.Metadata.Project, State: "available", CidrBlock: v.Spec.CIDR,
		CidrAssocs:    []cidrAssociation{{AssociationID: ID(PrefixCIDRAssoc, v.Metadata.UID), CidrBlock: v.Spec.CIDR, State: cidrState{"associated"}}},
		DhcpOptionsID: "default", InstanceTenancy: "default", IsDefault: v.Status.Default,
		TagSet: tagSet(&v.Metadata), labels: tagsOf(&v.Metadata),
	}
}

type createVPCResponse struct {
	Response
	VPC vpcItem `xml:"vpc"`
}

func createVPC(c *Call) (any, error) {
	cidr, err := c.Params.Required("CidrBlock")
	if err != nil {
		return nil, err
	}
	if t := c.Params.String("InstanceTenancy"); t != "" && t != "default" {
		return nil, invalidValue("InstanceTenancy '%s' is not supported: use default", clip(t))
	}
	if v6, err := c.Params.Bool("AmazonProvidedIpv6CidrBlock", false); err != nil {
		return nil, err
	} else if v6 {
		return nil, invalidValue("IPv6 is not supported")
	}
	tags, err := tagSpecs(c.Params, "vpc")
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbCreate, api.VPCKind); err != nil {
		return nil, err
	}
	v := &api.VPC{Metadata: withTags(api.ObjectMeta{Project: c.Project}, tags), Spec: api.VPCSpec{CIDR: cidr}}
	for _, name := range []string{nameFromTags(tags), randomName(PrefixVPC)} {
		if name == "" {
			continue
		}
		v.Metadata.Name = name
		_, err = c.create(v, "")
		if ae, ok := err.(*api.Error); !ok || ae.Code != api.CodeAlreadyExists {
			break
		}
	}
	if err != nil {
		return nil, fromAPI(err, nil)
	}
	return &createVPCResponse{VPC: vpcOf(v)}, nil
}

type describeVPCsResponse struct {
	Response
	VPCs      []vpcItem `xml:"vpcSet>item"`
	NextToken string    `xml:"nextToken,omitempty"`
}

var vpcFilters = filterSet[vpcItem]{
	"vpc-id":                                func(v vpcItem) []string { return []string{v.VpcID} },
	"is-default":                            func(v vpcItem) []string { return []string{strconv.FormatBool(v.IsDefault)} },
	"default":                               func(v vpcItem) []string { return []string{strconv.FormatBool(v.IsDefault)} },
	"cidr":                                  func(v vpcItem) []string { return []string{v.CidrBlock} },
	"cidr-block-association.cidr-block":     func(v vpcItem) []string { return []string{v.CidrBlock} },
	"cidr-block-association.association-id": func(v vpcItem) []string { return []string{v.CidrAssocs[0].AssociationID} },
	"cidr-block-association.state":          func(v vpcItem) []string { return []string{v.CidrAssocs[0].State.State} },
	"state":                                 func(v vpcItem) []string { return []string{v.State} },
	"owner-id":                              func(v vpcItem) []string { return []string{v.OwnerID} },
	"dhcp-options-id":                       func(v vpcItem) []string { return []string{v.DhcpOptionsID} },
}

func describeVPCs(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, vpcFilters, func(v vpcItem) map[string]string { return v.labels })
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbList, api.VPCKind); err != nil {
		return nil, err
	}
	objs, err := c.findAll(api.VPCKind, PrefixVPC, c.Params.List("VpcId"), func(id string) *Error { return vpcNotFound(id) })
	if err != nil {
		return nil, err
	}
	var items []vpcItem
	for _, o := range objs {
		if it := vpcOf(o.(*api.VPC)); keep(it) {
			items = append(items, it)
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeVPCsResponse{VPCs: page, NextToken: next}, nil
}

func deleteVPC(c *Call) (any, error) {
	id, err := c.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	v, err := c.vpcByID(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbDelete, api.VPCKind); err != nil {
		return nil, err
	}
	if err := c.remove(v); err != nil {
		if ae, ok := err.(*api.Error); ok && ae.Code == api.CodeInUse {
			return nil, Errorf(CodeDependencyViolation, "The vpc '%s' has dependencies and cannot be deleted: %s", id, ae.Message)
		}
		return nil, fromAPI(err, vpcNotFound(id))
	}
	return &Return{Return: true}, nil
}

type boolValue struct {
	Value bool `xml:"value"`
}

type describeVPCAttributeResponse struct {
	Response
	VpcID                string     `xml:"vpcId"`
	EnableDNSSupport     *boolValue `xml:"enableDnsSupport,omitempty"`
	EnableDNSHostnames   *boolValue `xml:"enableDnsHostnames,omitempty"`
	EnableAddressMetrics *boolValue `xml:"enableNetworkAddressUsageMetrics,omitempty"`
}

func describeVPCAttribute(c *Call) (any, error) {
	id, err := c.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	attr, err := c.Params.Required("Attribute")
	if err != nil {
		return nil, err
	}
	v, err := c.vpcByID(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbGet, api.VPCKind); err != nil {
		return nil, err
	}
	out := &describeVPCAttributeResponse{VpcID: id}
	switch attr {
	case "enableDnsSupport":
		out.EnableDNSSupport = &boolValue{v.DNSSupport()}
	case "enableDnsHostnames":
		out.EnableDNSHostnames = &boolValue{v.DNSHostnames()}
	case "enableNetworkAddressUsageMetrics":
		out.EnableAddressMetrics = &boolValue{false}
	default:
		return nil, invalidValue("Value (%s) for parameter attribute is invalid: use enableDnsSupport, enableDnsHostnames or enableNetworkAddressUsageMetrics", clip(attr))
	}
	return out, nil
}

func modifyVPCAttribute(c *Call) (any, error) {
	id, err := c.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	var set []string
	for _, p := range []string{"EnableDnsSupport.Value", "EnableDnsHostnames.Value", "EnableNetworkAddressUsageMetrics.Value"} {
		if c.Params.Has(p) {
			set = append(set, p)
		}
	}
	if len(set) != 1 {
		return nil, Errorf(CodeInvalidParameterCombination, "Exactly one attribute must be given: EnableDnsSupport, EnableDnsHostnames or EnableNetworkAddressUsageMetrics")
	}
	on, err := c.Params.Bool(set[0], false)
	if err != nil {
		return nil, err
	}
	v, err := c.vpcByID(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbUpdate, api.VPCKind); err != nil {
		return nil, err
	}
	switch set[0] {
	case "EnableDnsSupport.Value":
		if !on {
			return nil, Errorf("UnsupportedOperation", "DNS resolution cannot be turned off: each subnet's DNS server always answers for its instances")
		}
		v.Spec.EnableDNSSupport = &on
	case "EnableDnsHostnames.Value":
		v.Spec.EnableDNSHostnames = &on
	default:
		if on {
			return nil, invalidValue("network address usage metrics are not supported")
		}
		return &Return{Return: true}, nil
	}
	if err := c.update(v); err != nil {
		return nil, fromAPI(err, vpcNotFound(id))
	}
	return &Return{Return: true}, nil
}
