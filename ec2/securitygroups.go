package ec2

import (
	"slices"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Security groups ↔ security groups. A group made by CreateSecurityGroup
// starts with the allow-all IPv4 egress rule, as AWS's do. An IP
// permission maps onto one rule per CIDR or source group: protocol "-1"
// is "all", 6/17/1 are tcp/udp/icmp, tcp and udp port 0 is port 1 (so
// 0-65535 reads back as 0-65535), ICMP takes only -1 (all types). Rule
// descriptions, IPv6 ranges and prefix lists are refused: the rules
// cannot hold them. One difference remains: a port whose groups have no
// egress rule at all may send anywhere (AWS would allow nothing).

func init() {
	perm := []string{"IpPermissions.N.IpProtocol", "IpPermissions.N.FromPort", "IpPermissions.N.ToPort",
		"IpPermissions.N.IpRanges.N.CidrIp", "IpPermissions.N.IpRanges.N.Description",
		"IpPermissions.N.Ipv6Ranges.N.CidrIpv6", "IpPermissions.N.Ipv6Ranges.N.Description",
		"IpPermissions.N.PrefixListIds.N.PrefixListId", "IpPermissions.N.PrefixListIds.N.Description",
		"IpPermissions.N.Groups.N.GroupId", "IpPermissions.N.Groups.N.GroupName", "IpPermissions.N.Groups.N.UserId",
		"IpPermissions.N.Groups.N.Description",
		"GroupId", "GroupName", "IpProtocol", "FromPort", "ToPort", "CidrIp",
		"SourceSecurityGroupName", "SourceSecurityGroupOwnerId", "TagSpecification.N.ResourceType",
		"TagSpecification.N.Tag.N.Key", "TagSpecification.N.Tag.N.Value"}
	register(ec2API,
		Action{Name: "CreateSecurityGroup", Params: params(dryRun, tagSpecParams, []string{"GroupName", "GroupDescription", "VpcId"}), Run: createSecurityGroup},
		Action{Name: "DeleteSecurityGroup", Params: params(dryRun, []string{"GroupId", "GroupName"}), Run: deleteSecurityGroup},
		Action{Name: "DescribeSecurityGroups", Params: params(dryRun, filters, paging, []string{"GroupId.N", "GroupName.N"}), Run: describeSecurityGroups},
		Action{Name: "AuthorizeSecurityGroupIngress", Params: params(dryRun, perm), Run: changeRules("ingress", true)},
		Action{Name: "AuthorizeSecurityGroupEgress", Params: params(dryRun, perm), Run: changeRules("egress", true)},
		Action{Name: "RevokeSecurityGroupIngress", Params: params(dryRun, perm, []string{"SecurityGroupRuleId.N"}), Run: changeRules("ingress", false)},
		Action{Name: "RevokeSecurityGroupEgress", Params: params(dryRun, perm, []string{"SecurityGroupRuleId.N"}), Run: changeRules("egress", false)},
	)
}

// groupVPC is the VPC id of a security group; checkVPC refuses a VpcId
// that is not the caller's. For now a project has one VPC.
var (
	groupVPC = func(c *Call, g *api.SecurityGroup) string { return ID(PrefixVPC, "project/"+g.Metadata.Project) }
	// groupVPCs are the VPC ids the vpc-id filter matches for a group.
	groupVPCs = func(c *Call, g *api.SecurityGroup) []string { return []string{groupVPC(c, g)} }
	checkVPC  = func(c *Call, id string) error {
		if id != "" && id != ID(PrefixVPC, "project/"+c.Project) {
			return notFound("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", clip(id))
		}
		return nil
	}
)

func groupNotFound(id string) *Error {
	return notFound("InvalidGroup.NotFound", "The security group '%s' does not exist", clip(id))
}

type createSecurityGroupResponse struct {
	Response
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId"`
	TagSet  []Tag  `xml:"tagSet>item"`
}

// allowAllEgress is the rule every new group starts with.
var allowAllEgress = api.SecurityGroupRule{Direction: "egress", Protocol: "all", CIDR: "0.0.0.0/0"}

func createSecurityGroup(c *Call) (any, error) {
	name, err := c.Params.Required("GroupName")
	if err != nil {
		return nil, err
	}
	desc, err := c.Params.Required("GroupDescription")
	if err != nil {
		return nil, err
	}
	if e := api.ValidateName("GroupName", name); e != nil {
		return nil, invalidValue("Invalid security group name '%s': %s (%s)", clip(name), e.Message, e.Hint)
	}
	if err := checkVPC(c, c.Params.String("VpcId")); err != nil {
		return nil, err
	}
	tags, err := tagSpecs(c.Params, "security-group")
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbCreate, api.SecurityGroupKind); err != nil {
		return nil, err
	}
	g := &api.SecurityGroup{Metadata: withTags(api.ObjectMeta{Name: name, Project: c.Project}, tags),
		Spec: api.SecurityGroupSpec{Description: desc, Rules: []api.SecurityGroupRule{allowAllEgress}}}
	if _, err := c.create(g, ""); err != nil {
		if ae, ok := err.(*api.Error); ok && ae.Code == api.CodeAlreadyExists {
			return nil, Errorf("InvalidGroup.Duplicate", "The security group '%s' already exists", name)
		}
		return nil, fromAPI(err, nil)
	}
	return &createSecurityGroupResponse{Return: true, GroupID: idOf(PrefixSecurityGroup, g), TagSet: tagSet(&g.Metadata)}, nil
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// targetGroup finds the group GroupId or GroupName names.
func (c *Call) targetGroup() (*api.SecurityGroup, error) {
	v := c.view()
	if id := c.Params.String("GroupId"); id != "" {
		return v.groupByID(id)
	}
	if name := c.Params.String("GroupName"); name != "" {
		return v.groupByName(name)
	}
	return nil, missing("GroupId")
}

func deleteSecurityGroup(c *Call) (any, error) {
	g, err := c.targetGroup()
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbDelete, api.SecurityGroupKind); err != nil {
		return nil, err
	}
	if g.Metadata.Name == admission.DefaultGroupName {
		return nil, Errorf("CannotDelete", "the default security group cannot be deleted")
	}
	if err := c.remove(g); err != nil {
		if ae, ok := err.(*api.Error); ok && ae.Code == api.CodeInUse {
			return nil, Errorf(CodeDependencyViolation, "resource %s has a dependent object: %s", idOf(PrefixSecurityGroup, g), ae.Message)
		}
		return nil, fromAPI(err, groupNotFound(idOf(PrefixSecurityGroup, g)))
	}
	return &Return{Return: true}, nil
}

// permission is an IP permission of answers and requests.
type permission struct {
	IPProtocol string      `xml:"ipProtocol"`
	FromPort   *int        `xml:"fromPort,omitempty"`
	ToPort     *int        `xml:"toPort,omitempty"`
	Groups     []userGroup `xml:"groups>item"`
	IPRanges   []ipRange   `xml:"ipRanges>item"`
	IPv6Ranges []struct{}  `xml:"ipv6Ranges>item"`
	PrefixList []struct{}  `xml:"prefixListIds>item"`
}

type userGroup struct {
	UserID    string `xml:"userId"`
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName,omitempty"`
}

type ipRange struct {
	CidrIP string `xml:"cidrIp"`
}

type securityGroupItem struct {
	OwnerID     string       `xml:"ownerId"`
	GroupID     string       `xml:"groupId"`
	GroupName   string       `xml:"groupName"`
	Description string       `xml:"groupDescription"`
	VpcID       string       `xml:"vpcId"`
	Ingress     []permission `xml:"ipPermissions>item"`
	Egress      []permission `xml:"ipPermissionsEgress>item"`
	TagSet      []Tag        `xml:"tagSet>item"`
	ARN         string       `xml:"securityGroupArn"`
	labels      map[string]string
	vpcIDs      []string
}

type describeSecurityGroupsResponse struct {
	Response
	Groups    []securityGroupItem `xml:"securityGroupInfo>item"`
	NextToken string              `xml:"nextToken,omitempty"`
}

func intp(n int) *int { return &n }

// permissions groups a direction's rules into IP permissions by
// protocol and ports, in the order of their first rule.
func permissions(v *view, project string, rules []api.SecurityGroupRule, dir string) []permission {
	var out []permission
	for _, r := range rules {
		if r.Direction != dir {
			continue
		}
		p := permission{IPProtocol: r.Protocol}
		switch r.Protocol {
		case "all":
			p.IPProtocol = "-1"
		case "icmp":
			p.FromPort, p.ToPort = intp(-1), intp(-1)
		default:
			from := r.PortMin
			if from == 1 && r.PortMax == 65535 {
				from = 0
			}
			p.FromPort, p.ToPort = intp(from), intp(r.PortMax)
		}
		i := slices.IndexFunc(out, func(o permission) bool {
			return o.IPProtocol == p.IPProtocol && eqp(o.FromPort, p.FromPort) && eqp(o.ToPort, p.ToPort)
		})
		if i < 0 {
			out = append(out, p)
			i = len(out) - 1
		}
		if r.CIDR != "" {
			out[i].IPRanges = append(out[i].IPRanges, ipRange{CidrIP: r.CIDR})
		} else {
			out[i].Groups = append(out[i].Groups, userGroup{UserID: project, GroupID: v.groupID(r.SourceGroup), GroupName: r.SourceGroup})
		}
	}
	return out
}

func eqp(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func (v *view) securityGroup(g *api.SecurityGroup) securityGroupItem {
	id := idOf(PrefixSecurityGroup, g)
	return securityGroupItem{
		OwnerID: g.Metadata.Project, GroupID: id, GroupName: g.Metadata.Name, Description: g.Spec.Description,
		VpcID: groupVPC(v.c, g), Ingress: permissions(v, g.Metadata.Project, g.Spec.Rules, "ingress"),
		Egress: permissions(v, g.Metadata.Project, g.Spec.Rules, "egress"), TagSet: tagSet(&g.Metadata),
		ARN:    "arn:aws:ec2:" + v.c.Region + ":" + g.Metadata.Project + ":security-group/" + id,
		labels: tagsOf(&g.Metadata), vpcIDs: groupVPCs(v.c, g),
	}
}

func permValues(ps []permission, f func(permission) []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, f(p)...)
	}
	return out
}

func portString(p *int) []string {
	if p == nil {
		return nil
	}
	return []string{strconv.Itoa(*p)}
}

var groupFilters = filterSet[securityGroupItem]{
	"group-id":    func(g securityGroupItem) []string { return []string{g.GroupID} },
	"group-name":  func(g securityGroupItem) []string { return []string{g.GroupName} },
	"description": func(g securityGroupItem) []string { return []string{g.Description} },
	"vpc-id":      func(g securityGroupItem) []string { return g.vpcIDs },
	"owner-id":    func(g securityGroupItem) []string { return []string{g.OwnerID} },
	"ip-permission.protocol": func(g securityGroupItem) []string {
		return permValues(g.Ingress, func(p permission) []string { return []string{p.IPProtocol} })
	},
	"ip-permission.from-port": func(g securityGroupItem) []string {
		return permValues(g.Ingress, func(p permission) []string { return portString(p.FromPort) })
	},
	"ip-permission.to-port": func(g securityGroupItem) []string {
		return permValues(g.Ingress, func(p permission) []string { return portString(p.ToPort) })
	},
	"ip-permission.cidr": func(g securityGroupItem) []string {
		return permValues(g.Ingress, func(p permission) []string { return cidrs(p) })
	},
	"ip-permission.group-id": func(g securityGroupItem) []string {
		return permValues(g.Ingress, func(p permission) []string { return groupIDs(p) })
	},
	"egress.ip-permission.cidr": func(g securityGroupItem) []string {
		return permValues(g.Egress, func(p permission) []string { return cidrs(p) })
	},
	"egress.ip-permission.protocol": func(g securityGroupItem) []string {
		return permValues(g.Egress, func(p permission) []string { return []string{p.IPProtocol} })
	},
}

func cidrs(p permission) []string {
	var out []string
	for _, r := range p.IPRanges {
		out = append(out, r.CidrIP)
	}
	return out
}

func groupIDs(p permission) []string {
	var out []string
	for _, g := range p.Groups {
		out = append(out, g.GroupID)
	}
	return out
}

func describeSecurityGroups(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, groupFilters, func(g securityGroupItem) map[string]string { return g.labels })
	if err != nil {
		return nil, err
	}
	v := c.view()
	if err := v.load(api.SecurityGroupKind); err != nil {
		return nil, err
	}
	ids, names := c.Params.List("GroupId"), c.Params.List("GroupName")
	var groups []*api.SecurityGroup
	for _, id := range ids {
		g, err := v.groupByID(id)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	for _, n := range names {
		g, err := v.groupByName(n)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	if len(ids) == 0 && len(names) == 0 {
		for _, g := range v.groups {
			groups = append(groups, g)
		}
		slices.SortFunc(groups, func(a, b *api.SecurityGroup) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	}
	var items []securityGroupItem
	for _, g := range groups {
		it := v.securityGroup(g)
		if keep(it) {
			items = append(items, it)
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeSecurityGroupsResponse{Groups: page, NextToken: next}, nil
}
