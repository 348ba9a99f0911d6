package ec2

import (
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// A VPC's main route table and default network ACL, read-only: the
// VPC's status (api.VPCStatus) with ids derived from the VPC's UID. Every
// subnet uses them (implicit associations, as a new VPC's subnets at
// AWS).

type routeItem struct {
	Destination  string `xml:"destinationCidrBlock"`
	GatewayID    string `xml:"gatewayId,omitempty"`
	NatGatewayID string `xml:"natGatewayId,omitempty"`
	State        string `xml:"state"`
	Origin       string `xml:"origin"`
}

type routeTableAssociation struct {
	AssociationID string    `xml:"routeTableAssociationId"`
	RouteTableID  string    `xml:"routeTableId"`
	Main          bool      `xml:"main"`
	State         cidrState `xml:"associationState"`
}

type routeTableItem struct {
	RouteTableID string                  `xml:"routeTableId"`
	VpcID        string                  `xml:"vpcId"`
	OwnerID      string                  `xml:"ownerId"`
	Routes       []routeItem             `xml:"routeSet>item"`
	Associations []routeTableAssociation `xml:"associationSet>item"`
	Propagating  []struct{}              `xml:"propagatingVgwSet>item"`
	TagSet       []Tag                   `xml:"tagSet>item"`
}

func routeTableOf(v *api.VPC) routeTableItem {
	id := idOf(PrefixRouteTable, v)
	rt := routeTableItem{RouteTableID: id, VpcID: vpcID(v), OwnerID: v.Metadata.Project, TagSet: []Tag{},
		Associations: []routeTableAssociation{{AssociationID: idOf(PrefixRouteTableAssoc, v), RouteTableID: id, Main: true, State: cidrState{"associated"}}}}
	for _, r := range v.Status.RouteTable.Routes {
		ri := routeItem{Destination: r.Destination, State: "active", Origin: "CreateRouteTable"}
		if r.Target == api.RouteTargetNAT {
			ri.NatGatewayID, ri.Origin = idOf(PrefixNATGateway, v), "CreateRoute"
		} else {
			ri.GatewayID = "local"
		}
		rt.Routes = append(rt.Routes, ri)
	}
	return rt
}

type describeRouteTablesResponse struct {
	Response
	RouteTables []routeTableItem `xml:"routeTableSet>item"`
	NextToken   string           `xml:"nextToken,omitempty"`
}

var routeTableFilters = filterSet[routeTableItem]{
	"route-table-id": func(r routeTableItem) []string { return []string{r.RouteTableID} },
	"vpc-id":         func(r routeTableItem) []string { return []string{r.VpcID} },
	"owner-id":       func(r routeTableItem) []string { return []string{r.OwnerID} },
	"association.main": func(r routeTableItem) []string {
		return []string{strconv.FormatBool(r.Associations[0].Main)}
	},
	"association.route-table-association-id": func(r routeTableItem) []string { return []string{r.Associations[0].AssociationID} },
	"association.route-table-id":             func(r routeTableItem) []string { return []string{r.RouteTableID} },
	// Subnets are associated implicitly, and implicit associations are
	// not listed: no route table matches a subnet, as at AWS.
	"association.subnet-id": func(routeTableItem) []string { return nil },
	"route.destination-cidr-block": func(r routeTableItem) []string {
		return routeValues(r, func(i routeItem) string { return i.Destination })
	},
	"route.gateway-id": func(r routeTableItem) []string {
		return routeValues(r, func(i routeItem) string { return i.GatewayID })
	},
	"route.nat-gateway-id": func(r routeTableItem) []string {
		return routeValues(r, func(i routeItem) string { return i.NatGatewayID })
	},
	"route.state": func(r routeTableItem) []string { return routeValues(r, func(i routeItem) string { return i.State }) },
}

func routeValues(r routeTableItem, f func(routeItem) string) []string {
	var out []string
	for _, i := range r.Routes {
		if s := f(i); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// noTags is the tags of what has none: tag filters match nothing.
func noTags[T any](T) map[string]string { return nil }

func describeRouteTables(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, routeTableFilters, noTags[routeTableItem])
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbList, api.VPCKind); err != nil {
		return nil, err
	}
	objs, err := c.findAll(api.VPCKind, PrefixRouteTable, c.Params.List("RouteTableId"), func(id string) *Error {
		return notFound("InvalidRouteTableID.NotFound", "The routeTable ID '%s' does not exist", clip(id))
	})
	if err != nil {
		return nil, err
	}
	var items []routeTableItem
	for _, o := range objs {
		if it := routeTableOf(o.(*api.VPC)); keep(it) {
			items = append(items, it)
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeRouteTablesResponse{RouteTables: page, NextToken: next}, nil
}

type aclEntry struct {
	RuleNumber int    `xml:"ruleNumber"`
	Protocol   string `xml:"protocol"`
	RuleAction string `xml:"ruleAction"`
	Egress     bool   `xml:"egress"`
	CidrBlock  string `xml:"cidrBlock"`
}

type aclAssociation struct {
	AssociationID string `xml:"networkAclAssociationId"`
	NetworkACLID  string `xml:"networkAclId"`
	SubnetID      string `xml:"subnetId"`
}

type networkACLItem struct {
	NetworkACLID string           `xml:"networkAclId"`
	VpcID        string           `xml:"vpcId"`
	IsDefault    bool             `xml:"default"`
	Entries      []aclEntry       `xml:"entrySet>item"`
	Associations []aclAssociation `xml:"associationSet>item"`
	TagSet       []Tag            `xml:"tagSet>item"`
	OwnerID      string           `xml:"ownerId"`
}

func networkACLOf(v *api.VPC, subnets []*api.Network) networkACLItem {
	id := idOf(PrefixNetworkACL, v)
	acl := networkACLItem{NetworkACLID: id, VpcID: vpcID(v), IsDefault: true, OwnerID: v.Metadata.Project, TagSet: []Tag{}}
	for _, e := range v.Status.NetworkACL.Entries {
		p := e.Protocol
		if p == "all" {
			p = "-1"
		}
		acl.Entries = append(acl.Entries, aclEntry{RuleNumber: e.RuleNumber, Protocol: p, RuleAction: e.Action, Egress: e.Egress, CidrBlock: e.CIDR})
	}
	for _, n := range subnets {
		acl.Associations = append(acl.Associations, aclAssociation{AssociationID: idOf(PrefixNetworkACLAssoc, n), NetworkACLID: id, SubnetID: subnetIDOf(n)})
	}
	return acl
}

type describeNetworkACLsResponse struct {
	Response
	ACLs      []networkACLItem `xml:"networkAclSet>item"`
	NextToken string           `xml:"nextToken,omitempty"`
}

var networkACLFilters = filterSet[networkACLItem]{
	"network-acl-id": func(a networkACLItem) []string { return []string{a.NetworkACLID} },
	"vpc-id":         func(a networkACLItem) []string { return []string{a.VpcID} },
	"default":        func(a networkACLItem) []string { return []string{strconv.FormatBool(a.IsDefault)} },
	"owner-id":       func(a networkACLItem) []string { return []string{a.OwnerID} },
	"association.subnet-id": func(a networkACLItem) []string {
		var out []string
		for _, s := range a.Associations {
			out = append(out, s.SubnetID)
		}
		return out
	},
	"association.network-acl-id": func(a networkACLItem) []string { return []string{a.NetworkACLID} },
	"association.association-id": func(a networkACLItem) []string {
		var out []string
		for _, s := range a.Associations {
			out = append(out, s.AssociationID)
		}
		return out
	},
}

func describeNetworkACLs(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, networkACLFilters, noTags[networkACLItem])
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbList, api.VPCKind); err != nil {
		return nil, err
	}
	objs, err := c.findAll(api.VPCKind, PrefixNetworkACL, c.Params.List("NetworkAclId"), func(id string) *Error {
		return notFound("InvalidNetworkAclID.NotFound", "The networkAcl ID '%s' does not exist", clip(id))
	})
	if err != nil {
		return nil, err
	}
	nets, err := c.list(api.NetworkKind, nil)
	if err != nil {
		return nil, err
	}
	var items []networkACLItem
	for _, o := range objs {
		v := o.(*api.VPC)
		var subnets []*api.Network
		for _, n := range nets {
			if n := n.(*api.Network); n.Status.VPCUID == v.Metadata.UID {
				subnets = append(subnets, n)
			}
		}
		if it := networkACLOf(v, subnets); keep(it) {
			items = append(items, it)
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeNetworkACLsResponse{ACLs: page, NextToken: next}, nil
}
