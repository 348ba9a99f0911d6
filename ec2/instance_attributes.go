package ec2

import (
	"encoding/base64"
	"maps"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Instance attributes: disableApiTermination and disableApiStop are
// kept as internal labels and enforced by TerminateInstances and
// StopInstances (the REST API does not look at them);
// instanceInitiatedShutdownBehavior is always "stop"; userData is the
// spec's, which cannot change.

func init() {
	register(ec2API,
		Action{Name: "DescribeInstanceAttribute", Params: params(dryRun, []string{"InstanceId", "Attribute"}), Run: describeInstanceAttribute},
		Action{Name: "ModifyInstanceAttribute", Params: params(dryRun, []string{"InstanceId", "Attribute", "Value",
			"DisableApiTermination.Value", "DisableApiStop.Value", "InstanceInitiatedShutdownBehavior.Value",
			"UserData.Value", "InstanceType.Value", "GroupId.N", "SourceDestCheck.Value", "EbsOptimized.Value"}), Run: modifyInstanceAttribute},
		Action{Name: "DescribeInstanceCreditSpecifications", Params: params(dryRun, filters, paging, []string{"InstanceId.N"}), Run: describeCreditSpecifications},
	)
}

type attrValue struct {
	Value string `xml:"value"`
}

type describeInstanceAttributeResponse struct {
	Response
	InstanceID                        string      `xml:"instanceId"`
	DisableAPITermination             *attrValue  `xml:"disableApiTermination,omitempty"`
	DisableAPIStop                    *attrValue  `xml:"disableApiStop,omitempty"`
	InstanceInitiatedShutdownBehavior *attrValue  `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	UserData                          *attrValue  `xml:"userData,omitempty"`
	InstanceType                      *attrValue  `xml:"instanceType,omitempty"`
	SourceDestCheck                   *attrValue  `xml:"sourceDestCheck,omitempty"`
	EbsOptimized                      *attrValue  `xml:"ebsOptimized,omitempty"`
	Groups                            []groupItem `xml:"groupSet>item,omitempty"`
}

func (c *Call) oneInstance() (*api.Instance, error) {
	id, err := c.Params.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	o, err := c.find(api.InstanceKind, PrefixInstance, id, instanceNotFound(id))
	if err != nil {
		return nil, err
	}
	return o.(*api.Instance), nil
}

func boolAttr(labels map[string]string, key string) *attrValue {
	if labels[key] == "true" {
		return &attrValue{"true"}
	}
	return &attrValue{"false"}
}

func describeInstanceAttribute(c *Call) (any, error) {
	attr, err := c.Params.Required("Attribute")
	if err != nil {
		return nil, err
	}
	in, err := c.oneInstance()
	if err != nil {
		return nil, err
	}
	out := &describeInstanceAttributeResponse{InstanceID: idOf(PrefixInstance, in)}
	switch attr {
	case "disableApiTermination":
		out.DisableAPITermination = boolAttr(in.Metadata.Labels, labelDisableTermination)
	case "disableApiStop":
		out.DisableAPIStop = boolAttr(in.Metadata.Labels, labelDisableStop)
	case "instanceInitiatedShutdownBehavior":
		out.InstanceInitiatedShutdownBehavior = &attrValue{"stop"}
	case "userData":
		out.UserData = &attrValue{}
		if in.Spec.UserData != "" {
			out.UserData.Value = base64.StdEncoding.EncodeToString([]byte(in.Spec.UserData))
		}
	case "instanceType":
		out.InstanceType = &attrValue{in.Spec.Flavor}
	case "sourceDestCheck":
		out.SourceDestCheck = &attrValue{"true"}
	case "ebsOptimized":
		out.EbsOptimized = &attrValue{"false"}
	case "groupSet":
		v := c.view()
		out.Groups = v.instance(in, 0).Groups
	default:
		return nil, invalidValue("Value (%s) for parameter attribute is invalid. Unknown or unsupported attribute.", clip(attr))
	}
	return out, nil
}

func modifyInstanceAttribute(c *Call) (any, error) {
	in, err := c.oneInstance()
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbUpdate, api.InstanceKind); err != nil {
		return nil, err
	}
	p := c.Params
	set := map[string]string{}
	attr, value := p.String("Attribute"), p.String("Value")
	for _, a := range []struct{ name, param, label string }{
		{"disableApiTermination", "DisableApiTermination.Value", labelDisableTermination},
		{"disableApiStop", "DisableApiStop.Value", labelDisableStop},
	} {
		v, given := p[a.param]
		if attr == a.name {
			v, given = value, true
		}
		if !given {
			continue
		}
		on, err := (Params{a.param: v}).Bool(a.param, false)
		if err != nil {
			return nil, err
		}
		set[a.label] = map[bool]string{true: "true", false: ""}[on]
	}
	if b, ok := p["InstanceInitiatedShutdownBehavior.Value"]; ok || attr == "instanceInitiatedShutdownBehavior" {
		if !ok {
			b = value
		}
		if b != "stop" {
			return nil, invalidValue("instanceInitiatedShutdownBehavior '%s' is not supported: an instance that shuts down stops", clip(b))
		}
	}
	for _, param := range []string{"UserData.Value", "InstanceType.Value", "SourceDestCheck.Value", "EbsOptimized.Value", "GroupId.1"} {
		if p.Has(param) {
			return nil, Errorf("UnsupportedOperation", "changing %s of an instance is not supported: make a new instance", param)
		}
	}
	switch attr {
	case "", "disableApiTermination", "disableApiStop", "instanceInitiatedShutdownBehavior":
	default:
		return nil, Errorf("UnsupportedOperation", "changing the attribute %s of an instance is not supported", clip(attr))
	}
	if len(set) == 0 {
		return &Return{Return: true}, nil
	}
	labels := maps.Clone(in.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range set {
		if v == "" {
			delete(labels, k)
		} else {
			labels[k] = v
		}
	}
	in.Metadata.Labels = labels
	if err := c.update(in); err != nil {
		return nil, fromAPI(err, instanceNotFound(idOf(PrefixInstance, in)))
	}
	return &Return{Return: true}, nil
}

type creditSpec struct {
	InstanceID string `xml:"instanceId"`
	CPUCredits string `xml:"cpuCredits"`
}

type describeCreditSpecificationsResponse struct {
	Response
	Specs     []creditSpec `xml:"instanceCreditSpecificationSet>item"`
	NextToken string       `xml:"nextToken,omitempty"`
}

var creditFilters = filterSet[creditSpec]{
	"instance-id": func(s creditSpec) []string { return []string{s.InstanceID} },
}

// describeCreditSpecifications answers "standard" for every instance:
// there are no burstable credits here.
func describeCreditSpecifications(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, creditFilters, nil)
	if err != nil {
		return nil, err
	}
	objs, err := c.findAll(api.InstanceKind, PrefixInstance, c.Params.List("InstanceId"), instanceNotFound)
	if err != nil {
		return nil, err
	}
	var specs []creditSpec
	for _, o := range objs {
		s := creditSpec{InstanceID: idOf(PrefixInstance, o), CPUCredits: "standard"}
		if keep(s) {
			specs = append(specs, s)
		}
	}
	page, next, err := paginate(c.Params, specs)
	if err != nil {
		return nil, err
	}
	return &describeCreditSpecificationsResponse{Specs: page, NextToken: next}, nil
}
