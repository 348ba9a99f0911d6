package ec2

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Elastic IPs ↔ floating IPs. The allocation id derives from the
// floating IP's UID, the association id from that UID and the
// instance's, so both are stable and stateless.

func init() {
	register(ec2API,
		Action{Name: "AllocateAddress", Params: params(dryRun, tagSpecParams, []string{"Domain", "PublicIpv4Pool", "NetworkBorderGroup", "Address"}), Run: allocateAddress},
		Action{Name: "AssociateAddress", Params: params(dryRun, []string{"AllocationId", "InstanceId", "PublicIp", "AllowReassociation", "NetworkInterfaceId", "PrivateIpAddress"}), Run: associateAddress},
		Action{Name: "DisassociateAddress", Params: params(dryRun, []string{"AssociationId", "PublicIp"}), Run: disassociateAddress},
		Action{Name: "ReleaseAddress", Params: params(dryRun, []string{"AllocationId", "PublicIp", "NetworkBorderGroup"}), Run: releaseAddress},
		Action{Name: "DescribeAddresses", Params: params(dryRun, filters, []string{"AllocationId.N", "PublicIp.N"}), Run: describeAddresses},
	)
}

func allocationNotFound(id string) *Error {
	return notFound("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", clip(id))
}

// associationID is the id of f's association with its instance ("" when
// it has none).
func associationID(f *api.FloatingIP, instanceUID string) string {
	if f.Spec.Instance == "" {
		return ""
	}
	return ID(PrefixAssociation, f.Metadata.UID+"/"+instanceUID)
}

type allocateAddressResponse struct {
	Response
	PublicIP           string `xml:"publicIp"`
	AllocationID       string `xml:"allocationId"`
	Domain             string `xml:"domain"`
	PublicIPv4Pool     string `xml:"publicIpv4Pool"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
}

func allocateAddress(c *Call) (any, error) {
	if d := c.Params.String("Domain"); d != "" && d != "vpc" {
		return nil, invalidValue("Domain '%s' is not supported: use vpc", clip(d))
	}
	if c.Params.Has("Address") {
		return nil, invalidValue("Address: choosing the address is not supported")
	}
	tags, err := tagSpecs(c.Params, "elastic-ip")
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbCreate, api.FloatingIPKind); err != nil {
		return nil, err
	}
	b := make([]byte, 5)
	rand.Read(b)
	f := &api.FloatingIP{Metadata: withTags(api.ObjectMeta{Name: "eip-" + hex.EncodeToString(b), Project: c.Project}, tags),
		Spec: api.FloatingIPSpec{Pool: c.Params.String("PublicIpv4Pool")}}
	if _, err := c.create(f, ""); err != nil {
		if ae, ok := err.(*api.Error); ok && ae.Status == 409 {
			return nil, Errorf("AddressLimitExceeded", "%s", ae.Message)
		}
		return nil, fromAPI(err, nil)
	}
	return &allocateAddressResponse{PublicIP: f.Status.Address, AllocationID: idOf(PrefixAllocation, f), Domain: "vpc",
		PublicIPv4Pool: f.Spec.Pool, NetworkBorderGroup: c.Region}, nil
}

// address finds a floating IP by AllocationId or PublicIp.
func (c *Call) address() (*api.FloatingIP, error) {
	id, ip := c.Params.String("AllocationId"), c.Params.String("PublicIp")
	objs, err := c.list(api.FloatingIPKind, nil)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		f := o.(*api.FloatingIP)
		if id != "" && idOf(PrefixAllocation, f) == id || id == "" && ip != "" && f.Status.Address == ip {
			return f, nil
		}
	}
	switch {
	case id != "":
		return nil, allocationNotFound(id)
	case ip != "":
		return nil, notFound("InvalidAddress.NotFound", "Address '%s' not found.", clip(ip))
	}
	return nil, missing("AllocationId")
}

type associateAddressResponse struct {
	Response
	Return        bool   `xml:"return"`
	AssociationID string `xml:"associationId"`
}

func associateAddress(c *Call) (any, error) {
	f, err := c.address()
	if err != nil {
		return nil, err
	}
	var in *api.Instance
	if id := c.Params.String("InstanceId"); id != "" {
		o, err := c.find(api.InstanceKind, PrefixInstance, id, instanceNotFound(id))
		if err != nil {
			return nil, err
		}
		in = o.(*api.Instance)
	} else if eni := c.Params.String("NetworkInterfaceId"); eni != "" {
		objs, err := c.list(api.InstanceKind, func(o api.Object) bool {
			for _, a := range o.(*api.Instance).Spec.Networks {
				if ID(PrefixInterface, o.Meta().UID+"/"+a.Network) == eni {
					return true
				}
			}
			return false
		})
		if err != nil {
			return nil, err
		}
		if len(objs) == 0 {
			return nil, notFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", clip(eni))
		}
		in = objs[0].(*api.Instance)
	} else {
		return nil, missing("InstanceId")
	}
	if err := c.authorize(auth.VerbUpdate, api.FloatingIPKind); err != nil {
		return nil, err
	}
	reassoc, err := c.Params.Bool("AllowReassociation", true)
	if err != nil {
		return nil, err
	}
	if f.Spec.Instance != "" && f.Spec.Instance != in.Metadata.Name && !reassoc {
		return nil, Errorf("Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", idOf(PrefixAllocation, f), associationID(f, ""))
	}
	if f.Spec.Instance != in.Metadata.Name {
		f.Spec.Instance = in.Metadata.Name
		if err := c.update(f); err != nil {
			return nil, fromAPI(err, allocationNotFound(idOf(PrefixAllocation, f)))
		}
	}
	return &associateAddressResponse{Return: true, AssociationID: associationID(f, in.Metadata.UID)}, nil
}

// instanceUIDs maps the project's instance names to UIDs.
func (c *Call) instanceUIDs() (map[string]string, error) {
	objs, err := c.list(api.InstanceKind, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(objs))
	for _, o := range objs {
		out[o.Meta().Name] = o.Meta().UID
	}
	return out, nil
}

func disassociateAddress(c *Call) (any, error) {
	assoc, ip := c.Params.String("AssociationId"), c.Params.String("PublicIp")
	if assoc == "" && ip == "" {
		return nil, missing("AssociationId")
	}
	uids, err := c.instanceUIDs()
	if err != nil {
		return nil, err
	}
	objs, err := c.list(api.FloatingIPKind, func(o api.Object) bool {
		f := o.(*api.FloatingIP)
		if f.Spec.Instance == "" {
			return false
		}
		return assoc != "" && associationID(f, uids[f.Spec.Instance]) == assoc || assoc == "" && f.Status.Address == ip
	})
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, notFound("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", clip(assoc+ip))
	}
	if err := c.authorize(auth.VerbUpdate, api.FloatingIPKind); err != nil {
		return nil, err
	}
	f := objs[0].(*api.FloatingIP)
	f.Spec.Instance = ""
	if err := c.update(f); err != nil {
		return nil, fromAPI(err, nil)
	}
	return &Return{Return: true}, nil
}

func releaseAddress(c *Call) (any, error) {
	f, err := c.address()
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbDelete, api.FloatingIPKind); err != nil {
		return nil, err
	}
	if f.Spec.Instance != "" {
		return nil, Errorf("InvalidIPAddress.InUse", "Address %s is in use: disassociate it first", f.Status.Address)
	}
	if err := c.remove(f); err != nil {
		return nil, fromAPI(err, allocationNotFound(idOf(PrefixAllocation, f)))
	}
	return &Return{Return: true}, nil
}

type addressItem struct {
	PublicIP           string `xml:"publicIp"`
	AllocationID       string `xml:"allocationId"`
	Domain             string `xml:"domain"`
	InstanceID         string `xml:"instanceId,omitempty"`
	AssociationID      string `xml:"associationId,omitempty"`
	NetworkInterfaceID string `xml:"networkInterfaceId,omitempty"`
	NetworkOwnerID     string `xml:"networkInterfaceOwnerId,omitempty"`
	PrivateIPAddress   string `xml:"privateIpAddress,omitempty"`
	TagSet             []Tag  `xml:"tagSet>item"`
	PublicIPv4Pool     string `xml:"publicIpv4Pool"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
	labels             map[string]string
}

type describeAddressesResponse struct {
	Response
	Addresses []addressItem `xml:"addressesSet>item"`
}

var addressFilters = filterSet[addressItem]{
	"allocation-id":        func(a addressItem) []string { return []string{a.AllocationID} },
	"association-id":       func(a addressItem) []string { return []string{a.AssociationID} },
	"domain":               func(a addressItem) []string { return []string{a.Domain} },
	"instance-id":          func(a addressItem) []string { return []string{a.InstanceID} },
	"public-ip":            func(a addressItem) []string { return []string{a.PublicIP} },
	"private-ip-address":   func(a addressItem) []string { return []string{a.PrivateIPAddress} },
	"network-interface-id": func(a addressItem) []string { return []string{a.NetworkInterfaceID} },
	"network-border-group": func(a addressItem) []string { return []string{a.NetworkBorderGroup} },
}

func describeAddresses(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, addressFilters, func(a addressItem) map[string]string { return a.labels })
	if err != nil {
		return nil, err
	}
	objs, err := c.list(api.FloatingIPKind, nil)
	if err != nil {
		return nil, err
	}
	instances, err := c.list(api.InstanceKind, nil)
	if err != nil {
		return nil, err
	}
	byName := map[string]*api.Instance{}
	for _, o := range instances {
		byName[o.Meta().Name] = o.(*api.Instance)
	}
	items := map[string]addressItem{}
	var all []addressItem
	for _, o := range objs {
		f := o.(*api.FloatingIP)
		it := addressItem{PublicIP: f.Status.Address, AllocationID: idOf(PrefixAllocation, f), Domain: "vpc",
			TagSet: tagSet(&f.Metadata), PublicIPv4Pool: f.Spec.Pool, NetworkBorderGroup: c.Region,
			labels: tagsOf(&f.Metadata)}
		if in := byName[f.Spec.Instance]; in != nil {
			it.InstanceID = idOf(PrefixInstance, in)
			it.AssociationID = associationID(f, in.Metadata.UID)
			if len(in.Spec.Networks) > 0 {
				it.NetworkInterfaceID = ID(PrefixInterface, in.Metadata.UID+"/"+in.Spec.Networks[0].Network)
			}
			it.NetworkOwnerID = c.Project
			it.PrivateIPAddress = privateAddress(in)
		}
		items[it.AllocationID], items[it.PublicIP] = it, it
		all = append(all, it)
	}
	var chosen []addressItem
	for _, id := range c.Params.List("AllocationId") {
		it, ok := items[id]
		if !ok {
			return nil, allocationNotFound(id)
		}
		chosen = append(chosen, it)
	}
	for _, ip := range c.Params.List("PublicIp") {
		it, ok := items[ip]
		if !ok {
			return nil, notFound("InvalidAddress.NotFound", "Address '%s' not found.", clip(ip))
		}
		chosen = append(chosen, it)
	}
	if len(c.Params.List("AllocationId")) == 0 && len(c.Params.List("PublicIp")) == 0 {
		chosen = all
	}
	out := &describeAddressesResponse{}
	for _, it := range chosen {
		if keep(it) {
			out.Addresses = append(out.Addresses, it)
		}
	}
	return out, nil
}
