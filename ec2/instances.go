package ec2

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Instances ↔ instances: InstanceType is the flavor, ImageId the image
// (an "ami-" id, or an image's name), KeyName the key pair, SubnetId the
// network, SecurityGroupId.N the groups of its one interface. An
// instance made with ClientToken takes its name from the token, so a
// retry finds the instance the first call made (the API server's
// idempotency records).

// maxRunCount bounds MaxCount.
const maxRunCount = 100

func init() {
	register(ec2API,
		Action{Name: "RunInstances", Params: params(dryRun, tagSpecParams, []string{
			"ImageId", "InstanceType", "MinCount", "MaxCount", "KeyName", "UserData", "ClientToken",
			"SecurityGroupId.N", "SecurityGroup.N", "SubnetId", "PrivateIpAddress",
			"Placement.AvailabilityZone", "Placement.Tenancy", "Monitoring.Enabled", "EbsOptimized",
			"DisableApiTermination", "DisableApiStop", "InstanceInitiatedShutdownBehavior",
			"CreditSpecification.CpuCredits", "MetadataOptions.HttpTokens", "MetadataOptions.HttpEndpoint",
			"MetadataOptions.HttpPutResponseHopLimit", "MetadataOptions.InstanceMetadataTags",
		}), Run: runInstances},
		Action{Name: "TerminateInstances", Params: params(dryRun, []string{"InstanceId.N"}), Run: powerAction(verbTerminate)},
		Action{Name: "StartInstances", Params: params(dryRun, []string{"InstanceId.N", "AdditionalInfo"}), Run: powerAction(auth.VerbStart)},
		Action{Name: "StopInstances", Params: params(dryRun, []string{"InstanceId.N", "Force", "Hibernate"}), Run: powerAction(auth.VerbStop)},
		Action{Name: "RebootInstances", Params: params(dryRun, []string{"InstanceId.N"}), Run: powerAction(auth.VerbReboot)},
	)
}

const verbTerminate = auth.VerbDelete

// Internal labels of EC2 instance attributes.
const (
	labelDisableTermination = internalPrefix + "disable-api-termination"
	labelDisableStop        = internalPrefix + "disable-api-stop"
	labelClientToken        = internalPrefix + "client-token"
)

func runInstances(c *Call) (any, error) {
	p := c.Params
	image, err := p.Required("ImageId")
	if err != nil {
		return nil, err
	}
	minCount, err := p.Int("MinCount", 1)
	if err != nil {
		return nil, err
	}
	maxCount, err := p.Int("MaxCount", 1)
	if err != nil {
		return nil, err
	}
	if minCount < 1 || maxCount < minCount {
		return nil, invalidValue("MinCount (%d) and MaxCount (%d) must satisfy 1 <= MinCount <= MaxCount", minCount, maxCount)
	}
	if maxCount > maxRunCount {
		return nil, Errorf("InstanceLimitExceeded", "at most %d instances may be run by one request, %d asked", maxRunCount, maxCount)
	}
	userData, err := p.Base64("UserData", MaxUserDataBytes)
	if err != nil {
		return nil, err
	}
	tags, err := tagSpecs(p, "instance")
	if err != nil {
		return nil, err
	}
	if b := p.String("InstanceInitiatedShutdownBehavior"); b != "" && b != "stop" {
		return nil, invalidValue("InstanceInitiatedShutdownBehavior '%s' is not supported: an instance that shuts down stops", clip(b))
	}
	placement, err := runPlacement(p)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbCreate, api.InstanceKind); err != nil {
		return nil, err
	}
	v := c.sharedView()
	if err := v.preload(viewKinds...); err != nil {
		return nil, err
	}
	img, err := v.imageByID(image)
	if err != nil {
		return nil, err
	}
	flavor := p.String("InstanceType")
	if flavor == "" {
		return nil, missing("InstanceType")
	}
	att := api.NetworkAttachment{Network: "default", IP: p.String("PrivateIpAddress")}
	if s := p.String("SubnetId"); s != "" {
		n, err := v.networkBySubnet(s)
		if err != nil {
			return nil, err
		}
		att.Network = n.Metadata.Name
	}
	for _, id := range p.List("SecurityGroupId") {
		g, err := v.groupByID(id)
		if err != nil {
			return nil, err
		}
		att.SecurityGroups = append(att.SecurityGroups, g.Metadata.Name)
	}
	for _, name := range p.List("SecurityGroup") {
		g, err := v.groupByName(name)
		if err != nil {
			return nil, err
		}
		att.SecurityGroups = append(att.SecurityGroups, g.Metadata.Name)
	}
	if att.IP != "" && maxCount > 1 {
		return nil, Errorf(CodeInvalidParameterCombination, "PrivateIpAddress cannot be given with MaxCount > 1")
	}
	labels := map[string]string{}
	for _, a := range []struct{ param, label string }{{"DisableApiTermination", labelDisableTermination}, {"DisableApiStop", labelDisableStop}} {
		on, err := p.Bool(a.param, false)
		if err != nil {
			return nil, err
		}
		if on {
			labels[a.label] = "true"
		}
	}
	token := p.String("ClientToken")
	if len(token) > 64 {
		return nil, invalidValue("ClientToken is at most 64 characters")
	}
	base := nameFromTags(tags)
	var seed string
	if token != "" {
		sum := sha256.Sum256([]byte(c.Project + "\x00" + token))
		seed = hex.EncodeToString(sum[:4])
		labels[labelClientToken] = seed
	} else {
		b := make([]byte, 4)
		rand.Read(b)
		seed = hex.EncodeToString(b)
	}
	out := &runInstancesResponse{}
	out.OwnerID = c.Project
	var made []*api.Instance
	for i := range maxCount {
		// The Name tag names the instance when it can; else (or when the
		// name is taken) "ec2-" and the seed. Both are the same on a
		// retry, so the idempotency record of ClientToken matches.
		fallback := "ec2-" + seed
		if maxCount > 1 {
			fallback += "-" + strconv.Itoa(i)
		}
		var names []string
		if base != "" {
			name := base
			if maxCount > 1 {
				name = fmt.Sprintf("%s-%d", base, i)
			}
			if api.ValidateName("", name) == nil {
				names = append(names, name)
			}
		}
		names = append(names, fallback)
		key := ""
		if token != "" {
			key = "ec2-run:" + token + ":" + strconv.Itoa(i)
		}
		var in *api.Instance
		var err error
		for _, name := range names {
			in = &api.Instance{
				Metadata: withTags(api.ObjectMeta{Name: name, Project: c.Project, Labels: nilIfEmpty(labels)}, tags),
				Spec: api.InstanceSpec{Image: img.Metadata.Project + "/" + img.Metadata.Name, Flavor: flavor,
					KeyName: p.String("KeyName"), UserData: userData, Networks: []api.NetworkAttachment{att}, Placement: placement},
			}
			_, err = c.create(in, key)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeAlreadyExists && ae.Code != api.CodeIdempotencyMismatch {
				break
			}
		}
		if err != nil {
			if i >= minCount {
				break
			}
			return nil, c.runError(err, made)
		}
		made = append(made, in)
	}
	if len(made) > 0 {
		out.ReservationID = reservationID(made[0])
	}
	for i, in := range made {
		out.Instances = append(out.Instances, v.instance(in, i))
	}
	out.Groups = groupItems(v, made)
	return out, nil
}

// runPlacement maps Placement.AvailabilityZone onto a host selector
// (hosts of that zone label; the default zone is hosts without one) and
// refuses the options that would be ignored otherwise.
func runPlacement(p Params) (*api.Placement, error) {
	for _, o := range []struct{ param, ok string }{
		{"Monitoring.Enabled", "false"}, {"EbsOptimized", "false"}, {"Placement.Tenancy", "default"},
		{"MetadataOptions.HttpTokens", "optional"}, {"MetadataOptions.HttpEndpoint", "enabled"},
		{"MetadataOptions.InstanceMetadataTags", "disabled"}, {"CreditSpecification.CpuCredits", "standard"},
	} {
		if v, ok := p[o.param]; ok && v != o.ok {
			return nil, Errorf("UnsupportedOperation", "%s '%s' is not supported (only %s)", o.param, clip(v), o.ok)
		}
	}
	z := p.String("Placement.AvailabilityZone")
	switch {
	case z == "":
		return nil, nil
	case z == api.ZoneDefault:
		return &api.Placement{HostSelector: "!" + api.LabelZone}, nil
	case api.ValidateLabels("", map[string]string{api.LabelZone: z}) != nil:
		return nil, invalidValue("Invalid availability zone: [%s]", clip(z))
	}
	return &api.Placement{HostSelector: api.LabelZone + "=" + z}, nil
}

// runError turns a failed create into RunInstances' error, after
// terminating what the call made already (MinCount not reached).
func (c *Call) runError(err error, made []*api.Instance) error {
	for _, in := range made {
		c.remove(in)
	}
	if ae, ok := err.(*api.Error); ok {
		switch ae.Field {
		case "spec.flavor":
			return invalidValue("Invalid value for InstanceType: %s", ae.Message)
		case "spec.keyName":
			return notFound("InvalidKeyPair.NotFound", "The key pair does not exist: %s", ae.Message)
		case "spec.image":
			return notFound("InvalidAMIID.NotFound", "%s", ae.Message)
		}
	}
	return fromAPI(err, nil)
}

func reservationID(in *api.Instance) string { return idOf(PrefixReservation, in) }

type runInstancesResponse struct {
	Response
	ReservationID string         `xml:"reservationId"`
	OwnerID       string         `xml:"ownerId"`
	Groups        []groupItem    `xml:"groupSet>item"`
	Instances     []instanceItem `xml:"instancesSet>item"`
}

// instancesByID resolves InstanceId.N (required).
func (c *Call) instancesByID() ([]*api.Instance, error) {
	ids := c.Params.List("InstanceId")
	if len(ids) == 0 {
		return nil, missing("InstanceId.N")
	}
	objs, err := c.findAll(api.InstanceKind, PrefixInstance, ids, instanceNotFound)
	if err != nil {
		return nil, err
	}
	out := make([]*api.Instance, len(objs))
	for i, o := range objs {
		out[i] = o.(*api.Instance)
	}
	return out, nil
}

// instancesOrRecords resolves InstanceId.N (required) to instances and
// the records of terminated ones.
func (c *Call) instancesOrRecords() ([]*api.Instance, []*api.Event, error) {
	ids := c.Params.List("InstanceId")
	if len(ids) == 0 {
		return nil, nil, missing("InstanceId.N")
	}
	objs, records, err := c.describedInstances(ids)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*api.Instance, len(objs))
	for i, o := range objs {
		out[i] = o.(*api.Instance)
	}
	return out, records, nil
}

func instanceNotFound(id string) *Error {
	return notFound("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", clip(id))
}

type stateChange struct {
	InstanceID    string        `xml:"instanceId"`
	CurrentState  instanceState `xml:"currentState"`
	PreviousState instanceState `xml:"previousState"`
}

type stateChangeResponse struct {
	Response
	Instances []stateChange `xml:"instancesSet>item"`
}

// powerAction serves Start, Stop, Reboot and TerminateInstances.
func powerAction(verb auth.Verb) func(c *Call) (any, error) {
	return func(c *Call) (any, error) {
		var ins []*api.Instance
		var gone []*api.Event
		var err error
		if verb == verbTerminate {
			// An instance terminated already is terminated again, as at
			// AWS, while its record lasts.
			ins, gone, err = c.instancesOrRecords()
		} else {
			ins, err = c.instancesByID()
		}
		if err != nil {
			return nil, err
		}
		if err := c.authorize(verb, api.InstanceKind); err != nil {
			return nil, err
		}
		for _, in := range ins {
			switch {
			case verb == verbTerminate && in.Metadata.Labels[labelDisableTermination] == "true":
				return nil, Errorf("OperationNotPermitted", "The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", idOf(PrefixInstance, in))
			case verb == auth.VerbStop && in.Metadata.Labels[labelDisableStop] == "true":
				return nil, Errorf("OperationNotPermitted", "The instance '%s' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.", idOf(PrefixInstance, in))
			}
		}
		out := &stateChangeResponse{}
		v := c.sharedView()
		for _, in := range ins {
			prev := stateOf(in)
			var now *api.Instance
			switch verb {
			case verbTerminate:
				it := v.instance(in, 0)
				gone, err := c.h.cfg.Objects.DeleteObject(c.ctx, c.h.cfg.Store, c.ID, api.InstanceKind, c.Project, in.Metadata.Name)
				if err != nil {
					return nil, fromAPI(storeError(err), instanceNotFound(idOf(PrefixInstance, in)))
				}
				c.recordTerminated(&it, in)
				now = in
				t := in.Metadata.CreationTimestamp
				now.Metadata.DeletionTimestamp = &t
				if gone {
					now.Status.Phase = api.PhaseTerminated
				}
			default:
				now, err = c.h.cfg.Objects.InstanceAction(c.ctx, c.ID, verb, c.Project, in.Metadata.Name)
				if err != nil {
					return nil, fromAPI(err, instanceNotFound(idOf(PrefixInstance, in)))
				}
			}
			if verb == auth.VerbReboot {
				continue
			}
			out.Instances = append(out.Instances, stateChange{InstanceID: idOf(PrefixInstance, in), PreviousState: prev, CurrentState: stateOf(now)})
		}
		if verb == auth.VerbReboot {
			return &Return{Return: true}, nil
		}
		for _, e := range gone {
			out.Instances = append(out.Instances, stateChange{InstanceID: terminatedItem(e).InstanceID, PreviousState: stateTerminated, CurrentState: stateTerminated})
		}
		return out, nil
	}
}
