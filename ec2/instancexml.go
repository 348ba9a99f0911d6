package ec2

import (
	"bufio"
	"encoding/xml"
	"strconv"
)

// DescribeInstances answers can hold thousands of instances of some 80
// elements each, which encoding/xml's reflection encodes slowly; these
// functions write the same bytes by hand (instancexml_test.go checks
// that they equal encoding/xml's), straight to the connection through a
// small buffer, so that the client decodes the first instances while the
// server writes the last.

// xmlWriter writes XML through a buffer.
type xmlWriter struct{ *bufio.Writer }

func (w *xmlWriter) open(tag string)  { w.WriteByte('<'); w.WriteString(tag); w.WriteByte('>') }
func (w *xmlWriter) close(tag string) { w.WriteString("</"); w.WriteString(tag); w.WriteByte('>') }

func (w *xmlWriter) text(tag, s string) {
	w.open(tag)
	xml.EscapeText(w, []byte(s))
	w.close(tag)
}

// textOmit writes tag unless s is empty (",omitempty").
func (w *xmlWriter) textOmit(tag, s string) {
	if s != "" {
		w.text(tag, s)
	}
}

func (w *xmlWriter) int(tag string, n int) {
	w.open(tag)
	w.WriteString(strconv.Itoa(n))
	w.close(tag)
}

func (w *xmlWriter) bool(tag string, v bool) {
	w.open(tag)
	w.WriteString(strconv.FormatBool(v))
	w.close(tag)
}

func (w *xmlWriter) groups(gs []groupItem) {
	w.open("groupSet")
	for _, g := range gs {
		w.open("item")
		w.text("groupId", g.GroupID)
		w.text("groupName", g.GroupName)
		w.close("item")
	}
	w.close("groupSet")
}

// tags writes a tagSet, which AWS leaves out when there are no tags.
func (w *xmlWriter) tags(ts []Tag) {
	if len(ts) == 0 {
		return
	}
	w.open("tagSet")
	for _, t := range ts {
		w.open("item")
		w.text("key", t.Key)
		w.text("value", t.Value)
		w.close("item")
	}
	w.close("tagSet")
}

func (w *xmlWriter) association(a *association) {
	if a == nil {
		return
	}
	w.open("association")
	w.text("publicIp", a.PublicIP)
	w.text("publicDnsName", a.PublicDNSName)
	w.text("ipOwnerId", a.IPOwnerID)
	w.close("association")
}

func (w *xmlWriter) eni(e *interfaceItem) {
	w.text("networkInterfaceId", e.NetworkInterfaceID)
	w.text("subnetId", e.SubnetID)
	w.text("vpcId", e.VpcID)
	w.text("description", e.Description)
	w.text("ownerId", e.OwnerID)
	w.text("status", e.Status)
	w.text("macAddress", e.MacAddress)
	w.text("privateIpAddress", e.PrivateIPAddress)
	w.bool("sourceDestCheck", e.SourceDestCheck)
	w.text("interfaceType", e.InterfaceType)
	w.groups(e.Groups)
	if a := e.Attachment; a != nil {
		w.open("attachment")
		w.text("attachmentId", a.AttachmentID)
		w.textOmit("instanceId", a.InstanceID)
		w.int("deviceIndex", a.DeviceIndex)
		w.text("status", a.Status)
		w.text("attachTime", a.AttachTime)
		w.bool("deleteOnTermination", a.DeleteOnTermination)
		w.close("attachment")
	}
	w.association(e.Association)
	w.open("privateIpAddressesSet")
	for _, p := range e.PrivateIPs {
		w.open("item")
		w.text("privateIpAddress", p.PrivateIPAddress)
		w.bool("primary", p.Primary)
		w.association(p.Association)
		w.close("item")
	}
	w.close("privateIpAddressesSet")
	w.textOmit("availabilityZone", e.AvailabilityZone)
	w.tags(e.TagSet)
}

// instance writes the members of an instanceItem.
func (w *xmlWriter) instance(it *instanceItem) {
	w.text("instanceId", it.InstanceID)
	w.text("imageId", it.ImageID)
	w.open("instanceState")
	w.int("code", it.State.Code)
	w.text("name", it.State.Name)
	w.close("instanceState")
	w.text("privateDnsName", it.PrivateDNSName)
	w.text("dnsName", it.DNSName)
	w.text("reason", it.Reason)
	w.textOmit("keyName", it.KeyName)
	w.int("amiLaunchIndex", it.AmiLaunchIndex)
	w.text("instanceType", it.InstanceType)
	w.text("launchTime", it.LaunchTime)
	w.open("placement")
	w.text("availabilityZone", it.Placement.AvailabilityZone)
	w.text("groupName", it.Placement.GroupName)
	w.text("tenancy", it.Placement.Tenancy)
	w.close("placement")
	w.open("monitoring")
	w.text("state", it.Monitoring.State)
	w.close("monitoring")
	w.textOmit("subnetId", it.SubnetID)
	w.textOmit("vpcId", it.VpcID)
	w.textOmit("privateIpAddress", it.PrivateIPAddress)
	w.textOmit("ipAddress", it.IPAddress)
	w.bool("sourceDestCheck", it.SourceDestCheck)
	w.groups(it.Groups)
	if r := it.StateReason; r != nil {
		w.open("stateReason")
		w.text("code", r.Code)
		w.text("message", r.Message)
		w.close("stateReason")
	}
	w.text("architecture", it.Architecture)
	w.text("rootDeviceType", it.RootDeviceType)
	w.text("rootDeviceName", it.RootDeviceName)
	w.text("virtualizationType", it.VirtualizationType)
	w.text("clientToken", it.ClientToken)
	w.tags(it.TagSet)
	w.text("hypervisor", it.Hypervisor)
	w.open("networkInterfaceSet")
	for i := range it.NetworkInterfaces {
		w.open("item")
		w.eni(&it.NetworkInterfaces[i])
		w.close("item")
	}
	w.close("networkInterfaceSet")
	w.bool("ebsOptimized", it.EbsOptimized)
	w.bool("enaSupport", it.EnaSupport)
	w.open("cpuOptions")
	w.int("coreCount", it.CPUOptions.CoreCount)
	w.int("threadsPerCore", it.CPUOptions.ThreadsPerCore)
	w.close("cpuOptions")
	w.open("hibernationOptions")
	w.bool("configured", it.HibernationOptions.Configured)
	w.close("hibernationOptions")
	m := &it.MetadataOptions
	w.open("metadataOptions")
	w.text("state", m.State)
	w.text("httpTokens", m.HTTPTokens)
	w.int("httpPutResponseHopLimit", m.HTTPPutResponseHopLimit)
	w.text("httpEndpoint", m.HTTPEndpoint)
	w.text("httpProtocolIpv6", m.HTTPProtocolIPv6)
	w.text("instanceMetadataTags", m.InstanceMetadataTags)
	w.close("metadataOptions")
	w.open("enclaveOptions")
	w.bool("enabled", it.EnclaveOptions.Enabled)
	w.close("enclaveOptions")
	w.text("platformDetails", it.PlatformDetails)
	w.text("usageOperation", it.UsageOperation)
	w.text("currentInstanceBootMode", it.BootMode)
	w.open("maintenanceOptions")
	w.text("autoRecovery", it.MaintenanceOptions.AutoRecovery)
	w.close("maintenanceOptions")
	p := &it.PrivateDNSNameOpts
	w.open("privateDnsNameOptions")
	w.text("hostnameType", p.HostnameType)
	w.bool("enableResourceNameDnsARecord", p.EnableResourceNameDNSARecord)
	w.bool("enableResourceNameDnsAAAARecord", p.EnableResourceNameDNSAAAARecord)
	w.close("privateDnsNameOptions")
	w.open("capacityReservationSpecification")
	w.text("capacityReservationPreference", it.CapacityReservation.Preference)
	w.close("capacityReservationSpecification")
}

// reservations writes a reservationSet.
func (w *xmlWriter) reservations(rs []reservation) {
	w.open("reservationSet")
	for i := range rs {
		r := &rs[i]
		w.open("item")
		w.text("reservationId", r.ReservationID)
		w.text("ownerId", r.OwnerID)
		w.groups(r.Groups)
		w.open("instancesSet")
		for j := range r.Instances {
			w.open("item")
			w.instance(&r.Instances[j])
			w.close("item")
		}
		w.close("instancesSet")
		w.close("item")
	}
	w.close("reservationSet")
}
