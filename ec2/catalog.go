package ec2

import (
	"slices"
	"strconv"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
)

// The catalog: instance types ↔ flavors, AMIs ↔ images (the project's
// and the public ones), availability zones ↔ the hosts' zone labels,
// one region (Config.Region); volumes (none yet), network interfaces
// (one per instance attachment) and the account's attributes.

func init() {
	register(ec2API,
		Action{Name: "DescribeInstanceTypes", Params: params(dryRun, filters, paging, []string{"InstanceType.N"}), Run: describeInstanceTypes},
		Action{Name: "DescribeImages", Params: params(dryRun, filters, paging, []string{"ImageId.N", "Owner.N", "ExecutableBy.N", "IncludeDeprecated", "IncludeDisabled"}), Run: describeImages},
		Action{Name: "DescribeAvailabilityZones", Params: params(dryRun, filters, []string{"ZoneName.N", "ZoneId.N", "AllAvailabilityZones"}), Run: describeAvailabilityZones},
		Action{Name: "DescribeRegions", Params: params(dryRun, filters, []string{"RegionName.N", "AllRegions"}), Run: describeRegions},
		Action{Name: "DescribeVolumes", Params: params(dryRun, filters, paging, []string{"VolumeId.N"}), Run: describeVolumes},
		Action{Name: "DescribeNetworkInterfaces", Params: params(dryRun, filters, paging, []string{"NetworkInterfaceId.N"}), Run: describeNetworkInterfaces},
		Action{Name: "DescribeAccountAttributes", Params: params(dryRun, []string{"AttributeName.N"}), Run: describeAccountAttributes},
	)
}

type instanceTypeItem struct {
	InstanceType    string   `xml:"instanceType"`
	CurrentGen      bool     `xml:"currentGeneration"`
	FreeTier        bool     `xml:"freeTierEligible"`
	Hypervisor      string   `xml:"hypervisor"`
	InstanceStorage bool     `xml:"instanceStorageSupported"`
	BareMetal       bool     `xml:"bareMetal"`
	UsageClasses    []string `xml:"supportedUsageClasses>item"`
	RootDeviceTypes []string `xml:"supportedRootDeviceTypes>item"`
	Virtualization  []string `xml:"supportedVirtualizationTypes>item"`
	ProcessorInfo   struct {
		Architectures []string `xml:"supportedArchitectures>item"`
	} `xml:"processorInfo"`
	VCPUInfo struct {
		DefaultVCPUs          int `xml:"defaultVCpus"`
		DefaultCores          int `xml:"defaultCores"`
		DefaultThreadsPerCore int `xml:"defaultThreadsPerCore"`
	} `xml:"vCpuInfo"`
	MemoryInfo struct {
		SizeInMiB int64 `xml:"sizeInMiB"`
	} `xml:"memoryInfo"`
	InstanceStorageInfo *struct {
		TotalSizeInGB int64 `xml:"totalSizeInGB"`
	} `xml:"instanceStorageInfo,omitempty"`
	EbsInfo struct {
		EbsOptimizedSupport string `xml:"ebsOptimizedSupport"`
		EncryptionSupport   string `xml:"encryptionSupport"`
	} `xml:"ebsInfo"`
	NetworkInfo struct {
		Performance         string `xml:"networkPerformance"`
		MaxInterfaces       int    `xml:"maximumNetworkInterfaces"`
		IPv4PerIface        int    `xml:"ipv4AddressesPerInterface"`
		IPv6Supported       bool   `xml:"ipv6Supported"`
		EnaSupport          string `xml:"enaSupport"`
		EfaSupported        bool   `xml:"efaSupported"`
		EncryptionInTransit bool   `xml:"encryptionInTransitSupported"`
	} `xml:"networkInfo"`
	PlacementGroupInfo struct {
		Strategies []string `xml:"supportedStrategies>item"`
	} `xml:"placementGroupInfo"`
	HibernationSupported    bool     `xml:"hibernationSupported"`
	BurstablePerformance    bool     `xml:"burstablePerformanceSupported"`
	DedicatedHostsSupported bool     `xml:"dedicatedHostsSupported"`
	AutoRecoverySupported   bool     `xml:"autoRecoverySupported"`
	BootModes               []string `xml:"supportedBootModes>item"`
}

type describeInstanceTypesResponse struct {
	Response
	Types     []instanceTypeItem `xml:"instanceTypeSet>item"`
	NextToken string             `xml:"nextToken,omitempty"`
}

var instanceTypeFilters = filterSet[instanceTypeItem]{
	"instance-type":                         func(t instanceTypeItem) []string { return []string{t.InstanceType} },
	"current-generation":                    func(t instanceTypeItem) []string { return []string{strconv.FormatBool(t.CurrentGen)} },
	"vcpu-info.default-vcpus":               func(t instanceTypeItem) []string { return []string{strconv.Itoa(t.VCPUInfo.DefaultVCPUs)} },
	"memory-info.size-in-mib":               func(t instanceTypeItem) []string { return []string{strconv.FormatInt(t.MemoryInfo.SizeInMiB, 10)} },
	"processor-info.supported-architecture": func(t instanceTypeItem) []string { return t.ProcessorInfo.Architectures },
	"hypervisor":                            func(t instanceTypeItem) []string { return []string{t.Hypervisor} },
	"burstable-performance-supported":       func(t instanceTypeItem) []string { return []string{strconv.FormatBool(t.BurstablePerformance)} },
}

func flavorItem(f *api.Flavor) instanceTypeItem {
	it := instanceTypeItem{InstanceType: f.Metadata.Name, CurrentGen: true, Hypervisor: "kvm", InstanceStorage: true,
		UsageClasses: []string{"on-demand"}, RootDeviceTypes: []string{"instance-store"}, Virtualization: []string{"hvm"},
		AutoRecoverySupported: true, BootModes: []string{"legacy-bios"}}
	it.ProcessorInfo.Architectures = []string{"x86_64"}
	it.VCPUInfo.DefaultVCPUs, it.VCPUInfo.DefaultCores, it.VCPUInfo.DefaultThreadsPerCore = f.Spec.VCPUs, f.Spec.VCPUs, 1
	it.MemoryInfo.SizeInMiB = f.Spec.MemoryMiB
	it.InstanceStorageInfo = &struct {
		TotalSizeInGB int64 `xml:"totalSizeInGB"`
	}{f.Spec.DiskGiB}
	it.EbsInfo.EbsOptimizedSupport, it.EbsInfo.EncryptionSupport = "unsupported", "unsupported"
	it.NetworkInfo.Performance, it.NetworkInfo.MaxInterfaces, it.NetworkInfo.IPv4PerIface, it.NetworkInfo.EnaSupport = "Moderate", 4, 1, "unsupported"
	it.PlacementGroupInfo.Strategies = []string{"spread"}
	return it
}

func describeInstanceTypes(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, instanceTypeFilters, nil)
	if err != nil {
		return nil, err
	}
	objs, err := c.list(api.FlavorKind, nil)
	if err != nil {
		return nil, err
	}
	want := c.Params.List("InstanceType")
	var items []instanceTypeItem
	for _, o := range objs {
		if len(want) > 0 && !slices.Contains(want, o.Meta().Name) {
			continue
		}
		if it := flavorItem(o.(*api.Flavor)); keep(it) {
			items = append(items, it)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(objs, func(o api.Object) bool { return o.Meta().Name == w }) {
			return nil, invalidValue("The following supplied instance types do not exist: [%s]", clip(w))
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeInstanceTypesResponse{Types: page, NextToken: next}, nil
}

type imageItem struct {
	ImageID         string     `xml:"imageId"`
	ImageLocation   string     `xml:"imageLocation"`
	State           string     `xml:"imageState"`
	OwnerID         string     `xml:"imageOwnerId"`
	CreationDate    string     `xml:"creationDate"`
	IsPublic        bool       `xml:"isPublic"`
	Architecture    string     `xml:"architecture"`
	ImageType       string     `xml:"imageType"`
	Name            string     `xml:"name"`
	Description     string     `xml:"description,omitempty"`
	RootDeviceType  string     `xml:"rootDeviceType"`
	RootDeviceName  string     `xml:"rootDeviceName"`
	Virtualization  string     `xml:"virtualizationType"`
	Hypervisor      string     `xml:"hypervisor"`
	PlatformDetails string     `xml:"platformDetails"`
	UsageOperation  string     `xml:"usageOperation"`
	EnaSupport      bool       `xml:"enaSupport"`
	TagSet          []Tag      `xml:"tagSet>item"`
	BlockDevices    []struct{} `xml:"blockDeviceMapping>item"`
	labels          map[string]string
}

type describeImagesResponse struct {
	Response
	Images    []imageItem `xml:"imagesSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

var imageFilters = filterSet[imageItem]{
	"image-id":            func(i imageItem) []string { return []string{i.ImageID} },
	"name":                func(i imageItem) []string { return []string{i.Name} },
	"owner-id":            func(i imageItem) []string { return []string{i.OwnerID} },
	"state":               func(i imageItem) []string { return []string{i.State} },
	"is-public":           func(i imageItem) []string { return []string{strconv.FormatBool(i.IsPublic)} },
	"architecture":        func(i imageItem) []string { return []string{i.Architecture} },
	"image-type":          func(i imageItem) []string { return []string{i.ImageType} },
	"root-device-type":    func(i imageItem) []string { return []string{i.RootDeviceType} },
	"virtualization-type": func(i imageItem) []string { return []string{i.Virtualization} },
	"hypervisor":          func(i imageItem) []string { return []string{i.Hypervisor} },
	"description":         func(i imageItem) []string { return []string{i.Description} },
}

func imageOf(img *api.Image) imageItem {
	state := "available"
	if img.Status.Phase != "Ready" {
		state = "pending"
		if img.Status.Phase == "Failed" {
			state = "failed"
		}
	}
	arch := img.Spec.Architecture
	switch arch {
	case "", "amd64":
		arch = "x86_64"
	}
	return imageItem{ImageID: idOf(PrefixImage, img), ImageLocation: img.Metadata.Project + "/" + img.Metadata.Name, State: state,
		OwnerID: img.Metadata.Project, CreationDate: img.Metadata.CreationTimestamp.UTC().Format("2006-01-02T15:04:05.000Z"),
		IsPublic: img.Spec.Public, Architecture: arch, ImageType: "machine", Name: img.Metadata.Name, Description: img.Spec.Description,
		RootDeviceType: "instance-store", RootDeviceName: "/dev/vda", Virtualization: "hvm", Hypervisor: "kvm",
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", TagSet: tagSet(&img.Metadata),
		labels: tagsOf(&img.Metadata)}
}

func describeImages(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, imageFilters, func(i imageItem) map[string]string { return i.labels })
	if err != nil {
		return nil, err
	}
	imgs, err := c.images(true)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(imgs, func(a, b *api.Image) int {
		return strings.Compare(a.Metadata.Project+"/"+a.Metadata.Name, b.Metadata.Project+"/"+b.Metadata.Name)
	})
	owners := c.Params.List("Owner")
	ids := c.Params.List("ImageId")
	var items []imageItem
	for _, img := range imgs {
		it := imageOf(img)
		if len(ids) > 0 && !slices.Contains(ids, it.ImageID) {
			continue
		}
		if len(owners) > 0 && !slices.ContainsFunc(owners, func(o string) bool {
			return o == it.OwnerID || o == "self" && it.OwnerID == c.Project || o == "amazon" && it.IsPublic
		}) {
			continue
		}
		if keep(it) {
			items = append(items, it)
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(items, func(i imageItem) bool { return i.ImageID == id }) && len(c.Params.Structs("Filter")) == 0 {
			return nil, notFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", clip(id))
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeImagesResponse{Images: page, NextToken: next}, nil
}

type zoneItem struct {
	ZoneName    string     `xml:"zoneName"`
	ZoneID      string     `xml:"zoneId"`
	State       string     `xml:"zoneState"`
	RegionName  string     `xml:"regionName"`
	ZoneType    string     `xml:"zoneType"`
	GroupName   string     `xml:"groupName"`
	OptIn       string     `xml:"optInStatus"`
	BorderGroup string     `xml:"networkBorderGroup"`
	Messages    []struct{} `xml:"messageSet>item"`
}

type describeZonesResponse struct {
	Response
	Zones []zoneItem `xml:"availabilityZoneInfo>item"`
}

var zoneFilters = filterSet[zoneItem]{
	"zone-name":            func(z zoneItem) []string { return []string{z.ZoneName} },
	"zone-id":              func(z zoneItem) []string { return []string{z.ZoneID} },
	"state":                func(z zoneItem) []string { return []string{z.State} },
	"region-name":          func(z zoneItem) []string { return []string{z.RegionName} },
	"zone-type":            func(z zoneItem) []string { return []string{z.ZoneType} },
	"group-name":           func(z zoneItem) []string { return []string{z.GroupName} },
	"opt-in-status":        func(z zoneItem) []string { return []string{z.OptIn} },
	"network-border-group": func(z zoneItem) []string { return []string{z.BorderGroup} },
}

// describeAvailabilityZones names the zones of the hosts (a host without
// a zone label is in api.ZoneDefault).
func describeAvailabilityZones(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, zoneFilters, nil)
	if err != nil {
		return nil, err
	}
	hosts, err := c.list(api.HostKind, nil)
	if err != nil {
		return nil, err
	}
	zones := map[string]bool{api.ZoneDefault: len(hosts) == 0}
	for _, h := range hosts {
		z := h.Meta().Labels[api.LabelZone]
		if z == "" {
			z = api.ZoneDefault
		}
		zones[z] = true
	}
	names := c.Params.List("ZoneName")
	out := &describeZonesResponse{}
	for _, z := range slices.Sorted(func(yield func(string) bool) {
		for z, ok := range zones {
			if ok && !yield(z) {
				return
			}
		}
	}) {
		it := zoneItem{ZoneName: z, ZoneID: c.h.cfg.Region + "-" + z, State: "available", RegionName: c.h.cfg.Region,
			ZoneType: "availability-zone", GroupName: c.h.cfg.Region, OptIn: "opt-in-not-required", BorderGroup: c.h.cfg.Region}
		if len(names) > 0 && !slices.Contains(names, z) {
			continue
		}
		if keep(it) {
			out.Zones = append(out.Zones, it)
		}
	}
	for _, n := range names {
		if !zones[n] {
			return nil, invalidValue("Invalid availability zone: [%s]", clip(n))
		}
	}
	return out, nil
}

type regionItem struct {
	RegionName string `xml:"regionName"`
	Endpoint   string `xml:"regionEndpoint"`
	OptIn      string `xml:"optInStatus"`
}

type describeRegionsResponse struct {
	Response
	Regions []regionItem `xml:"regionInfo>item"`
}

var regionFilters = filterSet[regionItem]{
	"region-name":   func(r regionItem) []string { return []string{r.RegionName} },
	"endpoint":      func(r regionItem) []string { return []string{r.Endpoint} },
	"opt-in-status": func(r regionItem) []string { return []string{r.OptIn} },
}

// describeRegions names the one region.
func describeRegions(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, regionFilters, nil)
	if err != nil {
		return nil, err
	}
	r := regionItem{RegionName: c.h.cfg.Region, Endpoint: "ec2." + c.h.cfg.Region + ".ouro", OptIn: "opt-in-not-required"}
	for _, n := range c.Params.List("RegionName") {
		if n != r.RegionName {
			return nil, invalidValue("Invalid region: %s", clip(n))
		}
	}
	out := &describeRegionsResponse{}
	if keep(r) {
		out.Regions = []regionItem{r}
	}
	return out, nil
}

type describeVolumesResponse struct {
	Response
	Volumes []struct{} `xml:"volumeSet>item"`
}

var volumeFilters = filterSet[struct{}]{
	"attachment.instance-id":           nil,
	"attachment.delete-on-termination": nil,
	"attachment.device":                nil,
	"volume-id":                        nil,
	"volume-type":                      nil,
	"availability-zone":                nil,
	"status":                           nil,
	"size":                             nil,
	"encrypted":                        nil,
}

// describeVolumes answers no volumes: instances have no volumes of their
// own yet. A named volume does not exist.
func describeVolumes(c *Call) (any, error) {
	if _, err := parseFilters(c.Params, volumeFilters, func(struct{}) map[string]string { return nil }); err != nil {
		return nil, err
	}
	if ids := c.Params.List("VolumeId"); len(ids) > 0 {
		return nil, notFound("InvalidVolume.NotFound", "The volume '%s' does not exist.", clip(ids[0]))
	}
	return &describeVolumesResponse{}, nil
}

type describeNetworkInterfacesResponse struct {
	Response
	Interfaces []interfaceItem `xml:"networkInterfaceSet>item"`
	NextToken  string          `xml:"nextToken,omitempty"`
}

var interfaceFilters = filterSet[interfaceItem]{
	"network-interface-id":   func(i interfaceItem) []string { return []string{i.NetworkInterfaceID} },
	"subnet-id":              func(i interfaceItem) []string { return []string{i.SubnetID} },
	"vpc-id":                 func(i interfaceItem) []string { return []string{i.VpcID} },
	"private-ip-address":     func(i interfaceItem) []string { return []string{i.PrivateIPAddress} },
	"mac-address":            func(i interfaceItem) []string { return []string{i.MacAddress} },
	"status":                 func(i interfaceItem) []string { return []string{i.Status} },
	"owner-id":               func(i interfaceItem) []string { return []string{i.OwnerID} },
	"attachment.instance-id": func(i interfaceItem) []string { return []string{i.Attachment.InstanceID} },
	"attachment.device-index": func(i interfaceItem) []string {
		return []string{strconv.Itoa(i.Attachment.DeviceIndex)}
	},
	"group-id":          func(i interfaceItem) []string { return groupValues(instanceItem{Groups: i.Groups}, true) },
	"group-name":        func(i interfaceItem) []string { return groupValues(instanceItem{Groups: i.Groups}, false) },
	"availability-zone": func(i interfaceItem) []string { return []string{i.AvailabilityZone} },
	"interface-type":    func(i interfaceItem) []string { return []string{i.InterfaceType} },
}

// describeNetworkInterfaces answers the interfaces of the project's
// instances, one per network attachment.
func describeNetworkInterfaces(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, interfaceFilters, nil)
	if err != nil {
		return nil, err
	}
	objs, err := c.list(api.InstanceKind, nil)
	if err != nil {
		return nil, err
	}
	v := c.view()
	ids := c.Params.List("NetworkInterfaceId")
	var items []interfaceItem
	for _, o := range objs {
		in := o.(*api.Instance)
		it := v.instance(in, 0)
		for _, eni := range it.NetworkInterfaces {
			eni.Attachment.InstanceID = it.InstanceID
			eni.AvailabilityZone = it.Placement.AvailabilityZone
			eni.Description = "Primary network interface"
			if len(ids) > 0 && !slices.Contains(ids, eni.NetworkInterfaceID) {
				continue
			}
			if keep(eni) {
				items = append(items, eni)
			}
		}
	}
	for _, id := range ids {
		if !slices.ContainsFunc(items, func(i interfaceItem) bool { return i.NetworkInterfaceID == id }) && len(c.Params.Structs("Filter")) == 0 {
			return nil, notFound("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", clip(id))
		}
	}
	page, next, err := paginate(c.Params, items)
	if err != nil {
		return nil, err
	}
	return &describeNetworkInterfacesResponse{Interfaces: page, NextToken: next}, nil
}

type accountAttribute struct {
	Name   string `xml:"attributeName"`
	Values []struct {
		Value string `xml:"attributeValue"`
	} `xml:"attributeValueSet>item"`
}

type describeAccountAttributesResponse struct {
	Response
	Attributes []accountAttribute `xml:"accountAttributeSet>item"`
}

// describeAccountAttributes answers what tools ask at start: the
// platforms (VPC only) and the default VPC.
func describeAccountAttributes(c *Call) (any, error) {
	attrs := map[string]string{
		"supported-platforms":                   "VPC",
		"default-vpc":                           defaultVPCID(c, c.Project),
		"max-instances":                         strconv.Itoa(maxRunCount),
		"max-elastic-ips":                       "5",
		"vpc-max-elastic-ips":                   "5",
		"vpc-max-security-groups-per-interface": "5",
	}
	names := c.Params.List("AttributeName")
	if len(names) == 0 {
		for n := range attrs {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	out := &describeAccountAttributesResponse{}
	for _, n := range names {
		v, ok := attrs[n]
		if !ok {
			return nil, invalidValue("Invalid attribute name: %s", clip(n))
		}
		a := accountAttribute{Name: n}
		a.Values = append(a.Values, struct {
			Value string `xml:"attributeValue"`
		}{v})
		out.Attributes = append(out.Attributes, a)
	}
	return out, nil
}
