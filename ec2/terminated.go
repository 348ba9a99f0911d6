package ec2

import (
	"errors"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Terminated instances: AWS shows a terminated instance as `terminated`
// (48) for about an hour, which is what `aws ec2 wait
// instance-terminated` and Terraform's delete waiter look for. The
// instance itself is gone once its host has torn it down, with its
// addresses, ports and quota; what remains is a small record, kept as an
// Event about the instance (reason Terminated, source ec2) that etcd
// deletes with its lease after TerminatedFor. It counts against no quota
// and holds no subnet, VPC or security group. DescribeInstances answers
// the records of instances that no longer exist, by id as well as in
// full lists and with filters. TerminateInstances writes the record
// itself; instances deleted any other way (the REST API, ouro, the
// console, a group scaling in, a stack) get theirs from the controllers'
// leader (controller/ec2record).

// TerminatedFor is how long a terminated instance stays visible: the
// TTL of its record.
const TerminatedFor = time.Hour

// Labels of terminated instances' records.
const (
	labelTerminated   = internalPrefix + "terminated" // "true" on every record
	labelInstanceType = internalPrefix + "instance-type"
	labelImageID      = internalPrefix + "image-id"
	labelKeyName      = internalPrefix + "key-name"
	labelLaunchTime   = internalPrefix + "launch-time" // Unix seconds
	labelRecordZone   = internalPrefix + "availability-zone"
)

// ReasonTerminated is the reason of terminated instances' records.
const ReasonTerminated = "Terminated"

// terminatedName is the name of the record of instance id.
func terminatedName(id string) string { return "ec2-" + id }

// TerminatedRecord returns the record that keeps in, an instance being
// deleted, visible to DescribeInstances as terminated (48): to be
// created with the TTL TerminatedFor. img is its image (nil when gone or
// none), host the host it ran on (nil when none), message what deleted
// it. Its name is the instance's EC2 id: writers that race write it once.
func TerminatedRecord(in *api.Instance, img *api.Image, host *api.Host, at time.Time, message string) *api.Event {
	zone := api.ZoneDefault
	if host != nil && host.Metadata.Labels[api.LabelZone] != "" {
		zone = host.Metadata.Labels[api.LabelZone]
	}
	imageID := ""
	if img != nil {
		imageID = idOf(PrefixImage, img)
	}
	return newRecord(in, imageID, zone, at, message)
}

// newRecord is TerminatedRecord with the image's id and the zone.
func newRecord(in *api.Instance, imageID, zone string, at time.Time, message string) *api.Event {
	labels := map[string]string{labelTerminated: "true", labelInstanceType: in.Spec.Flavor,
		labelLaunchTime: strconv.FormatInt(in.Metadata.CreationTimestamp.Unix(), 10), labelRecordZone: zone}
	for k, v := range map[string]string{labelImageID: imageID, labelKeyName: in.Spec.KeyName, labelClientToken: in.Metadata.Labels[labelClientToken]} {
		if v != "" {
			labels[k] = v
		}
	}
	if api.ValidateLabels("", labels) != nil {
		// A key name or zone a label cannot hold: keep what can be.
		for k, v := range maps.Clone(labels) {
			if api.ValidateLabels("", map[string]string{k: v}) != nil {
				delete(labels, k)
			}
		}
	}
	return &api.Event{
		Metadata: withTags(api.ObjectMeta{Name: terminatedName(idOf(PrefixInstance, in)), Project: in.Metadata.Project, Labels: labels}, tagsOf(&in.Metadata)),
		Object:   api.ObjectRef{Kind: api.InstanceKind.Name, Project: in.Metadata.Project, Name: in.Metadata.Name, UID: in.Metadata.UID},
		Type:     "Normal", Reason: ReasonTerminated, Source: "ec2", Time: at.UTC(), Message: message,
	}
}

// recordTerminated keeps the record of it, an instance being terminated.
// It is bookkeeping of the server, written whatever the caller may do
// with events; a failure is logged, never answered: the instance is
// terminated all the same.
func (c *Call) recordTerminated(it *instanceItem, in *api.Instance) {
	e := newRecord(in, it.ImageID, it.Placement.AvailabilityZone, c.h.cfg.Now(),
		"terminated through the EC2 API: DescribeInstances shows it as terminated for an hour")
	_, err := c.h.cfg.Store.Create(c.ctx, e, store.CreateOptions{TTL: TerminatedFor})
	if err == nil {
		c.h.memory.recorded(e)
	}
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		c.h.log.Warn("ec2: record a terminated instance", "instance", in.Metadata.Name, "err", err)
	}
}

// isTerminatedRecord reports whether o is a terminated instance's record.
func isTerminatedRecord(o api.Object) bool {
	e, ok := o.(*api.Event)
	return ok && e.Reason == ReasonTerminated && e.Source == "ec2" && e.Metadata.Labels[labelTerminated] == "true"
}

// terminatedRecords lists the project's records of terminated instances.
// They are shown as instances, to whoever may list instances: the
// caller's right to list events is not asked.
func (c *Call) terminatedRecords() ([]*api.Event, error) {
	if recs, ok := c.h.memory.records(c.Project); ok {
		return recs, nil
	}
	objs, _, err := c.h.cfg.Store.List(c.ctx, api.EventKind, c.Project, store.ListOptions{Filter: isTerminatedRecord})
	if err != nil {
		return nil, err
	}
	out := make([]*api.Event, len(objs))
	for i, o := range objs {
		out[i] = o.(*api.Event)
	}
	return out, nil
}

// terminatedRecord reads the record of instance id, or nil.
func (c *Call) terminatedRecord(id string) (*api.Event, error) {
	if !validID(PrefixInstance, id) {
		return nil, nil
	}
	var e api.Event
	err := c.h.cfg.Store.Get(c.ctx, api.EventKind, c.Project, terminatedName(id), &e)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !isTerminatedRecord(&e):
		return nil, nil
	}
	return &e, nil
}

// terminatedItem is a record's instance in answers: terminated, with
// what AWS keeps of a terminated instance (no network interfaces, no
// addresses).
func terminatedItem(e *api.Event) instanceItem {
	l := e.Metadata.Labels
	id := strings.TrimPrefix(e.Metadata.Name, "ec2-")
	launch, _ := strconv.ParseInt(l[labelLaunchTime], 10, 64)
	it := instanceItem{
		InstanceID: id, ImageID: l[labelImageID], State: stateTerminated, KeyName: l[labelKeyName],
		InstanceType: l[labelInstanceType], LaunchTime: time.Unix(launch, 0).UTC().Format(time.RFC3339),
		Placement:    placement{AvailabilityZone: l[labelRecordZone], Tenancy: "default"},
		Reason:       "User initiated (" + e.Time.UTC().Format("2006-01-02 15:04:05 MST") + ")",
		StateReason:  &stateReason{Code: "Client.UserInitiatedShutdown", Message: "Client.UserInitiatedShutdown: User initiated shutdown"},
		Architecture: "x86_64", RootDeviceType: "instance-store", RootDeviceName: "/dev/vda",
		VirtualizationType: "hvm", Hypervisor: "kvm", TagSet: tagSet(&e.Metadata), ClientToken: l[labelClientToken],
		CPUOptions:      cpuOptions{CoreCount: 1, ThreadsPerCore: 1},
		MetadataOptions: metadataOptions{State: "pending", HTTPTokens: "optional", HTTPPutResponseHopLimit: 1, HTTPEndpoint: "enabled", HTTPProtocolIPv6: "disabled", InstanceMetadataTags: "disabled"},
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", BootMode: "legacy-bios",
		PrivateDNSNameOpts: privateDNSNameOptions{HostnameType: "ip-name"},
		reservation:        ID(PrefixReservation, e.Object.UID),
	}
	it.Monitoring.State = "disabled"
	it.MaintenanceOptions.AutoRecovery = "default"
	it.CapacityReservation.Preference = "open"
	return it
}
