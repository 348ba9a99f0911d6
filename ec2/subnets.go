package ec2

import (
	"maps"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Subnets are the networks of VPCs ("subnet-" ids from their UIDs,
// names from the Name tag, else "subnet-" and 8 random hex digits).
// A subnet spans every host, so its availability zone is only what
// CreateSubnet asked (kept, so that reads answer it) or the default
// zone; MapPublicIpOnLaunch is kept and shown but gives no address by
// itself (an elastic IP does).

// Labels keeping the subnet attributes with no field of their own.
const (
	labelZone         = internalPrefix + "availability-zone"
	labelMapPublicIP  = internalPrefix + "map-public-ip-on-launch"
	labelDNSARecord   = internalPrefix + "dns-a-record-on-launch"
	subnetReservedIPs = 3 // network, gateway, broadcast
)

func init() {
	register(ec2API,
		Action{Name: "CreateSubnet", Params: params(dryRun, tagSpecParams, []string{"VpcId", "CidrBlock", "AvailabilityZone", "AvailabilityZoneId", "Ipv6CidrBlock", "Ipv6Native"}), Run: createSubnet},
		Action{Name: "DescribeSubnets", Params: params(dryRun, filters, paging, []string{"SubnetId.N"}), Run: describeSubnets},
		Action{Name: "DeleteSubnet", Params: params(dryRun, []string{"SubnetId"}), Run: deleteSubnet},
		Action{Name: "ModifySubnetAttribute", Params: []string{"SubnetId", "MapPublicIpOnLaunch.Value", "AssignIpv6AddressOnCreation.Value",
			"EnableDns64.Value", "EnableResourceNameDnsARecordOnLaunch.Value", "EnableResourceNameDnsAAAARecordOnLaunch.Value",
			"PrivateDnsHostnameTypeOnLaunch", "MapCustomerOwnedIpOnLaunch.Value", "DisableLniAtDeviceIndex.Value"}, Run: modifySubnetAttribute},
	)
}

func subnetNotFound(id string) *Error {
	return notFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", clip(id))
}

// subnetByID finds a subnet (a network of a VPC) of the project by id.
func (c *Call) subnetByID(id string) (*api.Network, error) {
	o, err := c.find(api.NetworkKind, PrefixSubnet, id, subnetNotFound(id))
	if err != nil {
		return nil, err
	}
	if n := o.(*api.Network); n.Status.VPCUID != "" {
		return n, nil
	}
	return nil, subnetNotFound(id)
}

type dnsNameOptions struct {
	HostnameType string `xml:"hostnameType"`
	ARecord      bool   `xml:"enableResourceNameDnsARecord"`
	AAAARecord   bool   `xml:"enableResourceNameDnsAAAARecord"`
}

type subnetItem struct {
	SubnetID         string         `xml:"subnetId"`
	SubnetARN        string         `xml:"subnetArn"`
	State            string         `xml:"state"`
	VpcID            string         `xml:"vpcId"`
	OwnerID          string         `xml:"ownerId"`
	CidrBlock        string         `xml:"cidrBlock"`
	IPv6CidrAssocs   []struct{}     `xml:"ipv6CidrBlockAssociationSet>item"`
	AvailableIPs     int            `xml:"availableIpAddressCount"`
	Zone             string         `xml:"availabilityZone"`
	ZoneID           string         `xml:"availabilityZoneId"`
	DefaultForAz     bool           `xml:"defaultForAz"`
	MapPublicIP      bool           `xml:"mapPublicIpOnLaunch"`
	MapCustomerIP    bool           `xml:"mapCustomerOwnedIpOnLaunch"`
	AssignIPv6       bool           `xml:"assignIpv6AddressOnCreation"`
	EnableDNS64      bool           `xml:"enableDns64"`
	IPv6Native       bool           `xml:"ipv6Native"`
	DNSNameOnLaunch  dnsNameOptions `xml:"privateDnsNameOptionsOnLaunch"`
	TagSet           []Tag          `xml:"tagSet>item"`
	labels           map[string]string
	networkName, vpc string
}

// subnetOf describes network n, a subnet of a VPC; used is the number
// of its addresses taken.
func (c *Call) subnetOf(n *api.Network, used int) subnetItem {
	id := subnetIDOf(n)
	zone := n.Metadata.Labels[labelZone]
	if zone == "" {
		zone = api.ZoneDefault
	}
	avail := 0
	if p, err := netip.ParsePrefix(n.Spec.CIDR); err == nil {
		avail = max(1<<(32-p.Bits())-subnetReservedIPs-used, 0)
	}
	return subnetItem{
		SubnetID: id, SubnetARN: "arn:aws:ec2:" + c.Region + ":" + n.Metadata.Project + ":subnet/" + id,
		State: "available", VpcID: vpcIDOf(c, n), OwnerID: n.Metadata.Project, CidrBlock: n.Spec.CIDR,
		AvailableIPs: avail, Zone: zone, ZoneID: c.h.cfg.Region + "-" + zone,
		DefaultForAz:    n.Metadata.Name == admission.DefaultNetworkName && n.Spec.VPC == admission.DefaultVPCName,
		MapPublicIP:     n.Metadata.Labels[labelMapPublicIP] == "true",
		DNSNameOnLaunch: dnsNameOptions{HostnameType: "ip-name", ARecord: n.Metadata.Labels[labelDNSARecord] == "true"},
		TagSet:          tagSet(&n.Metadata), labels: tagsOf(&n.Metadata),
		networkName: n.Metadata.Name, vpc: n.Spec.VPC,
	}
}

// usedAddresses counts the addresses taken in a network (instances and
// load balancers).
func (c *Call) usedAddresses(n *api.Network) int {
	claims, err := c.h.cfg.Store.ListClaims(c.ctx, "ip/"+n.Metadata.UID+"/")
	if err != nil {
		return 0
	}
	return len(claims)
}

type createSubnetResponse struct {
	Response
	Subnet subnetItem `xml:"subnet"`
}

// subnetRefused answers a refused create with AWS's codes: an overlap
// is InvalidSubnet.Conflict, a prefix outside the VPC's
// InvalidSubnet.Range.
func subnetRefused(err error) error {
	if ae, ok := err.(*api.Error); ok && ae.Field == "spec.cidr" {
		switch {
		case strings.Contains(ae.Message, "overlaps"):
			return Errorf("InvalidSubnet.Conflict", "The CIDR conflicts with another subnet: %s", ae.Message)
		case strings.Contains(ae.Message, "not a subnet"), strings.Contains(ae.Message, "/"):
			return Errorf("InvalidSubnet.Range", "The CIDR is invalid: %s", ae.Message)
		}
	}
	return fromAPI(err, nil)
}

func createSubnet(c *Call) (any, error) {
	vid, err := c.Params.Required("VpcId")
	if err != nil {
		return nil, err
	}
	cidr, err := c.Params.Required("CidrBlock")
	if err != nil {
		return nil, err
	}
	if c.Params.Has("Ipv6CidrBlock") {
		return nil, invalidValue("IPv6 is not supported")
	}
	if v6, err := c.Params.Bool("Ipv6Native", false); err != nil {
		return nil, err
	} else if v6 {
		return nil, invalidValue("IPv6 is not supported")
	}
	zone, err := c.subnetZone()
	if err != nil {
		return nil, err
	}
	tags, err := tagSpecs(c.Params, "subnet")
	if err != nil {
		return nil, err
	}
	v, err := c.vpcByID(vid)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbCreate, api.NetworkKind); err != nil {
		return nil, err
	}
	var labels map[string]string
	if zone != "" {
		labels = map[string]string{labelZone: zone}
	}
	n := &api.Network{Metadata: withTags(api.ObjectMeta{Project: c.Project, Labels: labels}, tags),
		Spec: api.NetworkSpec{CIDR: cidr, VPC: v.Metadata.Name}}
	for _, name := range []string{nameFromTags(tags), randomName(PrefixSubnet)} {
		if name == "" {
			continue
		}
		n.Metadata.Name = name
		_, err = c.create(n, "")
		if ae, ok := err.(*api.Error); !ok || ae.Code != api.CodeAlreadyExists {
			break
		}
	}
	if err != nil {
		return nil, subnetRefused(err)
	}
	return &createSubnetResponse{Subnet: c.subnetOf(n, 0)}, nil
}

// subnetZone is the zone CreateSubnet asks for ("" for the default): a
// zone of the region's hosts, by name or by id.
func (c *Call) subnetZone() (string, error) {
	zone := c.Params.String("AvailabilityZone")
	if id := c.Params.String("AvailabilityZoneId"); id != "" {
		z, ok := strings.CutPrefix(id, c.h.cfg.Region+"-")
		if !ok || zone != "" && zone != z {
			return "", invalidValue("Invalid availability zone id: [%s]", clip(id))
		}
		zone = z
	}
	if zone == "" || zone == api.ZoneDefault {
		return "", nil
	}
	hosts, err := c.list(api.HostKind, nil)
	if err != nil {
		return "", err
	}
	for _, h := range hosts {
		if h.Meta().Labels[api.LabelZone] == zone {
			return zone, nil
		}
	}
	return "", invalidValue("Invalid availability zone: [%s]", clip(zone))
}

type describeSubnetsResponse struct {
	Response
	Subnets   []subnetItem `xml:"subnetSet>item"`
	NextToken string       `xml:"nextToken,omitempty"`
}

var subnetFilters = filterSet[subnetItem]{
	"subnet-id":                  func(s subnetItem) []string { return []string{s.SubnetID} },
	"subnet-arn":                 func(s subnetItem) []string { return []string{s.SubnetARN} },
	"vpc-id":                     func(s subnetItem) []string { return []string{s.VpcID} },
	"cidr-block":                 func(s subnetItem) []string { return []string{s.CidrBlock} },
	"cidr":                       func(s subnetItem) []string { return []string{s.CidrBlock} },
	"cidrBlock":                  func(s subnetItem) []string { return []string{s.CidrBlock} },
	"default-for-az":             func(s subnetItem) []string { return []string{strconv.FormatBool(s.DefaultForAz)} },
	"defaultForAz":               func(s subnetItem) []string { return []string{strconv.FormatBool(s.DefaultForAz)} },
	"availability-zone":          func(s subnetItem) []string { return []string{s.Zone} },
	"availabilityZone":           func(s subnetItem) []string { return []string{s.Zone} },
	"availability-zone-id":       func(s subnetItem) []string { return []string{s.ZoneID} },
	"available-ip-address-count": func(s subnetItem) []string { return []string{strconv.Itoa(s.AvailableIPs)} },
	"map-public-ip-on-launch":    func(s subnetItem) []string { return []string{strconv.FormatBool(s.MapPublicIP)} },
	"owner-id":                   func(s subnetItem) []string { return []string{s.OwnerID} },
	"state":                      func(s subnetItem) []string { return []string{s.State} },
}

func describeSubnets(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, subnetFilters, func(s subnetItem) map[string]string { return s.labels })
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbList, api.NetworkKind); err != nil {
		return nil, err
	}
	ids := c.Params.List("SubnetId")
	objs, err := c.findAll(api.NetworkKind, PrefixSubnet, ids, func(id string) *Error { return subnetNotFound(id) })
	if err != nil {
		return nil, err
	}
	var items []subnetItem
	for _, o := range objs {
		n := o.(*api.Network)
		if n.Status.VPCUID == "" {
			if len(ids) > 0 {
				return nil, subnetNotFound(subnetIDOf(n))
			}
			continue // a network of no VPC is no subnet
		}
		if it := c.subnetOf(n, c.usedAddresses(n)); keep(it) {
			items = append(items, it)
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeSubnetsResponse{Subnets: page, NextToken: next}, nil
}

func deleteSubnet(c *Call) (any, error) {
	id, err := c.Params.Required("SubnetId")
	if err != nil {
		return nil, err
	}
	n, err := c.subnetByID(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbDelete, api.NetworkKind); err != nil {
		return nil, err
	}
	if err := c.remove(n); err != nil {
		if ae, ok := err.(*api.Error); ok && ae.Code == api.CodeInUse {
			return nil, Errorf(CodeDependencyViolation, "The subnet '%s' has dependencies and cannot be deleted: %s", id, ae.Message)
		}
		return nil, fromAPI(err, subnetNotFound(id))
	}
	return &Return{Return: true}, nil
}

// modifySubnetAttribute sets one attribute: MapPublicIpOnLaunch and
// EnableResourceNameDnsARecordOnLaunch are kept; the IPv6, DNS64 and
// customer-owned ones may only be false, PrivateDnsHostnameTypeOnLaunch
// only ip-name.
func modifySubnetAttribute(c *Call) (any, error) {
	id, err := c.Params.Required("SubnetId")
	if err != nil {
		return nil, err
	}
	var set []string
	for name := range c.Params {
		if name != "SubnetId" && name != "Action" && name != "Version" {
			set = append(set, name)
		}
	}
	if len(set) != 1 {
		return nil, Errorf(CodeInvalidParameterCombination, "Exactly one attribute must be given")
	}
	attr := set[0]
	n, err := c.subnetByID(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbUpdate, api.NetworkKind); err != nil {
		return nil, err
	}
	if attr == "PrivateDnsHostnameTypeOnLaunch" {
		if v := c.Params.String(attr); v != "ip-name" {
			return nil, invalidValue("PrivateDnsHostnameTypeOnLaunch '%s' is not supported: use ip-name", clip(v))
		}
		return &Return{Return: true}, nil
	}
	on, err := c.Params.Bool(attr, false)
	if err != nil {
		return nil, err
	}
	label := map[string]string{"MapPublicIpOnLaunch.Value": labelMapPublicIP, "EnableResourceNameDnsARecordOnLaunch.Value": labelDNSARecord}[attr]
	if label == "" {
		if on {
			return nil, invalidValue("%s is not supported", strings.TrimSuffix(attr, ".Value"))
		}
		return &Return{Return: true}, nil
	}
	labels := maps.Clone(n.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if on {
		labels[label] = "true"
	} else {
		delete(labels, label)
	}
	n.Metadata.Labels = nilIfEmpty(labels)
	if err := c.update(n); err != nil {
		return nil, fromAPI(err, subnetNotFound(id))
	}
	return &Return{Return: true}, nil
}
