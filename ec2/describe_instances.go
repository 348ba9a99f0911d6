package ec2

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// DescribeInstances answers each instance in a reservation of its own,
// in name order, with AWS's state codes: 0 pending, 16 running, 32
// shutting-down, 48 terminated, 64 stopping, 80 stopped.

func init() {
	register(ec2API,
		Action{Name: "DescribeInstances", Params: params(dryRun, filters, paging, []string{"InstanceId.N"}), Run: describeInstances},
	)
}

type instanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

// Instance states.
var (
	statePending      = instanceState{0, "pending"}
	stateRunning      = instanceState{16, "running"}
	stateShuttingDown = instanceState{32, "shutting-down"}
	stateTerminated   = instanceState{48, "terminated"}
	stateStopping     = instanceState{64, "stopping"}
	stateStopped      = instanceState{80, "stopped"}
)

// stateOf maps an instance's phase and wanted power state to EC2's.
func stateOf(in *api.Instance) instanceState {
	switch {
	case in.Status.Phase == api.PhaseTerminated:
		return stateTerminated
	case in.Metadata.DeletionTimestamp != nil || in.Status.Phase == api.PhaseTerminating:
		return stateShuttingDown
	}
	wants := in.WantsRunning()
	switch in.Status.Phase {
	case api.PhaseRunning:
		if wants {
			return stateRunning
		}
		return stateStopping
	case api.PhaseStopping:
		return stateStopping
	case api.PhaseStopped:
		if wants {
			return statePending
		}
		return stateStopped
	case api.PhaseFailed:
		if wants && in.Spec.RestartPolicy != api.RestartNever {
			return statePending
		}
		return stateStopped
	}
	if !wants {
		return stateStopping
	}
	return statePending
}

type groupItem struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type placement struct {
	AvailabilityZone string `xml:"availabilityZone"`
	GroupName        string `xml:"groupName"`
	Tenancy          string `xml:"tenancy"`
}

type stateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type association struct {
	PublicIP      string `xml:"publicIp"`
	PublicDNSName string `xml:"publicDnsName"`
	IPOwnerID     string `xml:"ipOwnerId"`
}

type privateIP struct {
	PrivateIPAddress string       `xml:"privateIpAddress"`
	Primary          bool         `xml:"primary"`
	Association      *association `xml:"association,omitempty"`
}

type interfaceItem struct {
	NetworkInterfaceID string       `xml:"networkInterfaceId"`
	SubnetID           string       `xml:"subnetId"`
	VpcID              string       `xml:"vpcId"`
	Description        string       `xml:"description"`
	OwnerID            string       `xml:"ownerId"`
	Status             string       `xml:"status"`
	MacAddress         string       `xml:"macAddress"`
	PrivateIPAddress   string       `xml:"privateIpAddress"`
	SourceDestCheck    bool         `xml:"sourceDestCheck"`
	InterfaceType      string       `xml:"interfaceType"`
	Groups             []groupItem  `xml:"groupSet>item"`
	Attachment         *eniAttach   `xml:"attachment,omitempty"`
	Association        *association `xml:"association,omitempty"`
	PrivateIPs         []privateIP  `xml:"privateIpAddressesSet>item"`
	AvailabilityZone   string       `xml:"availabilityZone,omitempty"`
	TagSet             []Tag        `xml:"tagSet>item,omitempty"`
}

type eniAttach struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId,omitempty"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type instanceItem struct {
	InstanceID     string        `xml:"instanceId"`
	ImageID        string        `xml:"imageId"`
	State          instanceState `xml:"instanceState"`
	PrivateDNSName string        `xml:"privateDnsName"`
	DNSName        string        `xml:"dnsName"`
	Reason         string        `xml:"reason"`
	KeyName        string        `xml:"keyName,omitempty"`
	AmiLaunchIndex int           `xml:"amiLaunchIndex"`
	InstanceType   string        `xml:"instanceType"`
	LaunchTime     string        `xml:"launchTime"`
	Placement      placement     `xml:"placement"`
	Monitoring     struct {
		State string `xml:"state"`
	} `xml:"monitoring"`
	SubnetID           string          `xml:"subnetId,omitempty"`
	VpcID              string          `xml:"vpcId,omitempty"`
	PrivateIPAddress   string          `xml:"privateIpAddress,omitempty"`
	IPAddress          string          `xml:"ipAddress,omitempty"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	Groups             []groupItem     `xml:"groupSet>item"`
	StateReason        *stateReason    `xml:"stateReason,omitempty"`
	Architecture       string          `xml:"architecture"`
	RootDeviceType     string          `xml:"rootDeviceType"`
	RootDeviceName     string          `xml:"rootDeviceName"`
	VirtualizationType string          `xml:"virtualizationType"`
	ClientToken        string          `xml:"clientToken"`
	TagSet             []Tag           `xml:"tagSet>item,omitempty"`
	Hypervisor         string          `xml:"hypervisor"`
	NetworkInterfaces  []interfaceItem `xml:"networkInterfaceSet>item"`
	EbsOptimized       bool            `xml:"ebsOptimized"`
	EnaSupport         bool            `xml:"enaSupport"`
	CPUOptions         cpuOptions      `xml:"cpuOptions"`
	HibernationOptions struct {
		Configured bool `xml:"configured"`
	} `xml:"hibernationOptions"`
	MetadataOptions metadataOptions `xml:"metadataOptions"`
	EnclaveOptions  struct {
		Enabled bool `xml:"enabled"`
	} `xml:"enclaveOptions"`
	PlatformDetails    string `xml:"platformDetails"`
	UsageOperation     string `xml:"usageOperation"`
	BootMode           string `xml:"currentInstanceBootMode"`
	MaintenanceOptions struct {
		AutoRecovery string `xml:"autoRecovery"`
	} `xml:"maintenanceOptions"`
	PrivateDNSNameOpts privateDNSNameOptions `xml:"privateDnsNameOptions"`
	// reservation is the reservation's id (not marshalled: unexported).
	reservation         string
	CapacityReservation struct {
		Preference string `xml:"capacityReservationPreference"`
	} `xml:"capacityReservationSpecification"`
}

type cpuOptions struct {
	CoreCount      int `xml:"coreCount"`
	ThreadsPerCore int `xml:"threadsPerCore"`
}

type metadataOptions struct {
	State                   string `xml:"state"`
	HTTPTokens              string `xml:"httpTokens"`
	HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
	HTTPEndpoint            string `xml:"httpEndpoint"`
	HTTPProtocolIPv6        string `xml:"httpProtocolIpv6"`
	InstanceMetadataTags    string `xml:"instanceMetadataTags"`
}

type privateDNSNameOptions struct {
	HostnameType                    string `xml:"hostnameType"`
	EnableResourceNameDNSARecord    bool   `xml:"enableResourceNameDnsARecord"`
	EnableResourceNameDNSAAAARecord bool   `xml:"enableResourceNameDnsAAAARecord"`
}

// privateAddress is an instance's address on its first network.
func privateAddress(in *api.Instance) string {
	for _, itf := range in.Status.Interfaces {
		if len(in.Spec.Networks) > 0 && itf.Network == in.Spec.Networks[0].Network {
			return itf.IP
		}
	}
	if len(in.Spec.Networks) > 0 {
		return in.Spec.Networks[0].IP
	}
	return ""
}

// instance is an instance's item in answers.
func (v *view) instance(in *api.Instance, launchIndex int) instanceItem {
	id := idOf(PrefixInstance, in)
	it := instanceItem{
		InstanceID: id, ImageID: v.imageID(in.Spec.Image), State: stateOf(in),
		KeyName: in.Spec.KeyName, AmiLaunchIndex: launchIndex, InstanceType: in.Spec.Flavor,
		LaunchTime:       in.Metadata.CreationTimestamp.UTC().Format(time.RFC3339),
		Placement:        placement{AvailabilityZone: v.zone(in.Status.Host), Tenancy: "default"},
		PrivateIPAddress: privateAddress(in), SourceDestCheck: true,
		Architecture: "x86_64", RootDeviceType: "instance-store", RootDeviceName: "/dev/vda",
		VirtualizationType: "hvm", Hypervisor: "kvm", TagSet: tagSet(&in.Metadata),
		CPUOptions:      cpuOptions{CoreCount: int(max(in.Spec.Resources.VCPUs, 1)), ThreadsPerCore: 1},
		MetadataOptions: metadataOptions{State: "applied", HTTPTokens: "optional", HTTPPutResponseHopLimit: 1, HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled", InstanceMetadataTags: "disabled"},
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", BootMode: "legacy-bios",
		PrivateDNSNameOpts: privateDNSNameOptions{HostnameType: "ip-name"},
		ClientToken:        in.Metadata.Labels[labelClientToken],
		reservation:        reservationID(in),
	}
	it.Monitoring.State = "disabled"
	it.MaintenanceOptions.AutoRecovery = "default"
	it.CapacityReservation.Preference = "open"
	if in.Spec.Image == "" {
		it.ImageID = ""
	}
	if in.Status.Driver == api.DriverContainer {
		it.VirtualizationType, it.Hypervisor = "paravirtual", "xen"
	}
	if in.Status.Reason != "" {
		it.StateReason = &stateReason{Code: in.Status.Reason, Message: in.Status.Message}
		it.Reason = in.Status.Reason
	}
	// Its subnet's DNS server answers the name of its address
	// (docs/networking.md), as AWS's ip-name: its private DNS name, when
	// its VPC gives instances DNS names.
	if it.PrivateIPAddress != "" && len(in.Spec.Networks) > 0 && v.dnsHostnames(in.Spec.Networks[0].Network) {
		it.PrivateDNSName = api.AddressName(it.PrivateIPAddress)
	}
	if f := v.floatingIP(in.Metadata.Name); f != nil && f.Status.Address != "" {
		it.IPAddress = f.Status.Address
	}
	for i, att := range in.Spec.Networks {
		var groups []groupItem
		for _, g := range att.SecurityGroups {
			groups = append(groups, groupItem{GroupID: v.groupID(g), GroupName: g})
		}
		addr := att.IP
		mac := ""
		for _, itf := range in.Status.Interfaces {
			if itf.Network == att.Network {
				addr, mac = itf.IP, itf.MAC
			}
		}
		eni := interfaceItem{
			NetworkInterfaceID: ID(PrefixInterface, in.Metadata.UID+"/"+att.Network),
			SubnetID:           v.subnetID(att.Network), VpcID: v.vpcID(att.Network),
			OwnerID: in.Metadata.Project, Status: "in-use", MacAddress: mac, PrivateIPAddress: addr,
			SourceDestCheck: true, InterfaceType: "interface", Groups: groups,
			Attachment: &eniAttach{AttachmentID: ID("eni-attach", in.Metadata.UID+"/"+att.Network), InstanceID: id, DeviceIndex: i,
				Status: "attached", AttachTime: it.LaunchTime, DeleteOnTermination: true},
		}
		var assoc *association
		if i == 0 && it.IPAddress != "" {
			assoc = &association{PublicIP: it.IPAddress, IPOwnerID: in.Metadata.Project}
			eni.Association = assoc
		}
		eni.PrivateIPs = []privateIP{{PrivateIPAddress: addr, Primary: true, Association: assoc}}
		it.NetworkInterfaces = append(it.NetworkInterfaces, eni)
		if i == 0 {
			it.SubnetID, it.VpcID, it.Groups = eni.SubnetID, eni.VpcID, groups
		}
	}
	return it
}

// groupItems lists the groups of instances' first interfaces, once each.
func groupItems(v *view, ins []*api.Instance) []groupItem {
	var out []groupItem
	for _, in := range ins {
		if len(in.Spec.Networks) == 0 {
			continue
		}
		for _, g := range in.Spec.Networks[0].SecurityGroups {
			item := groupItem{GroupID: v.groupID(g), GroupName: g}
			if !slices.Contains(out, item) {
				out = append(out, item)
			}
		}
	}
	return out
}

type reservation struct {
	ReservationID string         `xml:"reservationId"`
	OwnerID       string         `xml:"ownerId"`
	Groups        []groupItem    `xml:"groupSet>item"`
	Instances     []instanceItem `xml:"instancesSet>item"`
}

// describeInstancesResponse is written by hand (instancexml.go), as
// encoding/xml would write this struct.
type describeInstancesResponse struct {
	Response
	Reservations []reservation `xml:"reservationSet>item"`
	NextToken    string        `xml:"nextToken,omitempty"`
}

// writeBody writes the response's members.
func (r *describeInstancesResponse) writeBody(w xmlWriter) {
	w.text("requestId", r.RequestID)
	w.reservations(r.Reservations)
	w.textOmit("nextToken", r.NextToken)
}

// instanceFilters are DescribeInstances' filters, on the answer's items.
var instanceFilters = filterSet[instanceItem]{
	"instance-id":                 func(i instanceItem) []string { return []string{i.InstanceID} },
	"instance-state-name":         func(i instanceItem) []string { return []string{i.State.Name} },
	"instance-state-code":         func(i instanceItem) []string { return []string{strconv.Itoa(i.State.Code)} },
	"instance-type":               func(i instanceItem) []string { return []string{i.InstanceType} },
	"image-id":                    func(i instanceItem) []string { return []string{i.ImageID} },
	"key-name":                    func(i instanceItem) []string { return []string{i.KeyName} },
	"subnet-id":                   func(i instanceItem) []string { return []string{i.SubnetID} },
	"vpc-id":                      func(i instanceItem) []string { return []string{i.VpcID} },
	"private-ip-address":          func(i instanceItem) []string { return []string{i.PrivateIPAddress} },
	"private-dns-name":            func(i instanceItem) []string { return []string{i.PrivateDNSName} },
	"dns-name":                    func(i instanceItem) []string { return []string{i.DNSName} },
	"ip-address":                  func(i instanceItem) []string { return []string{i.IPAddress} },
	"availability-zone":           func(i instanceItem) []string { return []string{i.Placement.AvailabilityZone} },
	"client-token":                func(i instanceItem) []string { return []string{i.ClientToken} },
	"launch-index":                func(i instanceItem) []string { return []string{strconv.Itoa(i.AmiLaunchIndex)} },
	"architecture":                func(i instanceItem) []string { return []string{i.Architecture} },
	"root-device-type":            func(i instanceItem) []string { return []string{i.RootDeviceType} },
	"network-interface.subnet-id": func(i instanceItem) []string { return eniValues(i, func(e interfaceItem) string { return e.SubnetID }) },
	"network-interface.vpc-id":    func(i instanceItem) []string { return eniValues(i, func(e interfaceItem) string { return e.VpcID }) },
	"instance.group-id":           func(i instanceItem) []string { return groupValues(i, true) },
	"instance.group-name":         func(i instanceItem) []string { return groupValues(i, false) },
	"group-id":                    func(i instanceItem) []string { return groupValues(i, true) },
	"group-name":                  func(i instanceItem) []string { return groupValues(i, false) },
	"reservation-id":              func(i instanceItem) []string { return []string{i.reservation} },
}

func eniValues(i instanceItem, f func(interfaceItem) string) []string {
	var out []string
	for _, e := range i.NetworkInterfaces {
		out = append(out, f(e))
	}
	return out
}

func groupValues(i instanceItem, id bool) []string {
	var out []string
	for _, g := range i.Groups {
		if id {
			out = append(out, g.GroupID)
		} else {
			out = append(out, g.GroupName)
		}
	}
	return out
}

func describeInstances(c *Call) (any, error) {
	tags := map[string]map[string]string{}
	keep, err := parseFilters(c.Params, instanceFilters, func(i instanceItem) map[string]string { return tags[i.InstanceID] })
	if err != nil {
		return nil, err
	}
	ids := c.Params.List("InstanceId")
	if len(ids) > 0 && (c.Params.Has("MaxResults") || c.Params.Has("NextToken")) {
		return nil, Errorf(CodeInvalidParameterCombination, "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	// The instances and what they refer to, read at once.
	v := c.sharedView()
	var objs []api.Object
	var records []*api.Event
	var wg sync.WaitGroup
	wg.Go(func() { objs, records, err = c.describedInstances(ids) })
	perr := v.preload(viewKinds...)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	items := make([]instanceItem, 0, len(objs)+len(records))
	names := make([]string, 0, cap(items))
	for _, o := range objs {
		in := o.(*api.Instance)
		items = append(items, v.instance(in, 0))
		names = append(names, in.Metadata.Name)
		tags[items[len(items)-1].InstanceID] = tagsOf(&in.Metadata)
	}
	for _, e := range records {
		it := terminatedItem(e)
		items = append(items, it)
		names = append(names, e.Object.Name)
		tags[it.InstanceID] = tagsOf(&e.Metadata)
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	if len(records) > 0 {
		// Name order, as without records; a record of a name in use again
		// comes after the live instance.
		slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	}
	var res []reservation
	for _, i := range order {
		it := items[i]
		if !keep(it) {
			continue
		}
		// The reservation's groupSet is empty, as AWS answers it for
		// instances in a VPC: their groups are the instance's.
		res = append(res, reservation{ReservationID: it.reservation, OwnerID: c.Project, Instances: []instanceItem{it}})
	}
	page, next, err := paginate(c.Params, res)
	if err != nil {
		return nil, err
	}
	return &describeInstancesResponse{Reservations: page, NextToken: next}, nil
}

// describedInstances returns the instances ids name (all without ids)
// and the records of terminated instances among them: in a full list,
// those whose instance is gone; by id, those of the ids no instance has.
func (c *Call) describedInstances(ids []string) ([]api.Object, []*api.Event, error) {
	if len(ids) == 0 {
		objs, err := c.listFor(api.InstanceKind, true)
		if err != nil {
			return nil, nil, err
		}
		records, err := c.terminatedRecords()
		if err != nil {
			return nil, nil, err
		}
		live := make(map[string]bool, len(objs))
		for _, o := range objs {
			live[o.Meta().UID] = true
		}
		gone := records[:0:0]
		for _, e := range records {
			if !live[e.Object.UID] {
				gone = append(gone, e)
			}
		}
		return objs, gone, nil
	}
	objs, err := c.findAll(api.InstanceKind, PrefixInstance, ids, instanceNotFound)
	var nf *Error
	if err == nil || !errors.As(err, &nf) || nf.Code != "InvalidInstanceID.NotFound" {
		return objs, nil, err
	}
	// Some id names no instance: each is either a terminated one's
	// record or not found.
	all, err := c.list(api.InstanceKind, nil)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]api.Object, len(all))
	for _, o := range all {
		byID[idOf(PrefixInstance, o)] = o
	}
	objs = objs[:0]
	var records []*api.Event
	for _, id := range ids {
		if o := byID[id]; o != nil {
			objs = append(objs, o)
			continue
		}
		e, err := c.terminatedRecord(id)
		if err != nil {
			return nil, nil, err
		}
		if e == nil {
			return nil, nil, instanceNotFound(id)
		}
		records = append(records, e)
	}
	return objs, records, nil
}
