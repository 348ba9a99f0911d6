package ec2

import (
	"maps"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Tags are the object's labels, one for one: a tag whose key or value a
// label cannot hold (api.ValidateLabels: keys "[prefix/]name" of
// letters, digits, '-', '_', '.', values of at most 63 such characters)
// is refused with InvalidParameterValue naming it. The "Name" tag is
// the label "Name"; objects made through EC2 take it as their name
// when it is a valid resource name.

// internalPrefix starts the labels that keep EC2 attributes with no
// field of their own (disableApiTermination, …); they are not tags.
const internalPrefix = "ec2.ouro.dev/"

// Tag is one tag in answers (tagSet/item).
type Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// tagSet returns an object's tags in key order.
func tagSet(labels map[string]string) []Tag {
	out := make([]Tag, 0, len(labels))
	for _, k := range sortedKeys(labels) {
		if strings.HasPrefix(k, internalPrefix) {
			continue
		}
		out = append(out, Tag{Key: k, Value: labels[k]})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	ks := keys(m)
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

// checkTags refuses tags labels cannot hold.
func checkTags(tags map[string]string) error {
	for k := range tags {
		if strings.HasPrefix(k, internalPrefix) {
			return invalidValue("the tag key '%s' is reserved: keys starting %s hold EC2 attributes", clip(k), internalPrefix)
		}
	}
	if e := api.ValidateLabels("tags", tags); e != nil {
		return invalidValue("%s: tags are kept as labels (keys [prefix/]name and values of at most 63 letters, digits, '-', '_', '.')", e.Message)
	}
	return nil
}

// parseTags reads "prefix.N.Key" and "prefix.N.Value".
func parseTags(p Params, prefix string) (map[string]string, error) {
	tags := map[string]string{}
	for _, s := range p.Structs(prefix) {
		k, ok := s["Key"]
		if !ok || k == "" {
			return nil, missing(prefix + ".N.Key")
		}
		tags[k] = s["Value"]
	}
	return tags, checkTags(tags)
}

// tagSpecs reads TagSpecification.N for resourceType: the tags to give
// the made objects.
func tagSpecs(p Params, resourceType string) (map[string]string, error) {
	tags := map[string]string{}
	for i, s := range p.Structs("TagSpecification") {
		rt := s["ResourceType"]
		ts, err := parseTags(s, "Tag")
		if err != nil {
			return nil, err
		}
		switch rt {
		case resourceType:
			maps.Copy(tags, ts)
		case "volume", "network-interface":
			// Nothing of these kinds is made; their tags go nowhere.
		default:
			return nil, invalidValue("TagSpecification.%d.ResourceType '%s' is not valid here: use %s", i+1, clip(rt), resourceType)
		}
	}
	return tags, checkTags(tags)
}

var tagSpecParams = []string{"TagSpecification.N.ResourceType", "TagSpecification.N.Tag.N.Key", "TagSpecification.N.Tag.N.Value"}

// nameFromTags returns the object name the Name tag asks for, or "".
func nameFromTags(tags map[string]string) string {
	n := tags["Name"]
	if api.ValidateName("", n) != nil {
		return ""
	}
	return n
}

// taggable kinds by id prefix: what CreateTags, DeleteTags and
// DescribeTags work on.
type taggable struct {
	prefix, resourceType string
	kind                 *api.Kind
}

var taggables = []taggable{
	{PrefixInstance, "instance", api.InstanceKind},
	{PrefixSecurityGroup, "security-group", api.SecurityGroupKind},
	{PrefixKeyPair, "key-pair", api.KeyPairKind},
	{PrefixAllocation, "elastic-ip", api.FloatingIPKind},
	{PrefixImage, "image", api.ImageKind},
	{PrefixSubnet, "subnet", api.NetworkKind},
}

// addTaggable lets another file (VPCs, route tables) make its kind
// taggable.
func addTaggable(prefix, resourceType string, k *api.Kind) {
	taggables = append(taggables, taggable{prefix, resourceType, k})
}

func init() {
	register(ec2API,
		Action{Name: "CreateTags", Params: params(dryRun, []string{"ResourceId.N", "Tag.N.Key", "Tag.N.Value"}), Run: createTags},
		Action{Name: "DeleteTags", Params: params(dryRun, []string{"ResourceId.N", "Tag.N.Key", "Tag.N.Value"}), Run: deleteTags},
		Action{Name: "DescribeTags", Params: params(dryRun, filters, paging), Run: describeTags},
	)
}

// resolveResources finds the objects of CreateTags' and DeleteTags'
// ResourceId.N.
func (c *Call) resolveResources() ([]api.Object, error) {
	ids := c.Params.List("ResourceId")
	if len(ids) == 0 {
		return nil, missing("ResourceId.N")
	}
	var out []api.Object
	for _, id := range ids {
		prefix, _, _ := strings.Cut(id, "-")
		var t *taggable
		for i := range taggables {
			if taggables[i].prefix == prefix {
				t = &taggables[i]
			}
		}
		if t == nil {
			return nil, invalidValue("Invalid id: \"%s\" (a resource that cannot be tagged)", clip(id))
		}
		o, err := c.find(t.kind, t.prefix, id, notFound("InvalidID", "The ID '%s' is not valid", clip(id)))
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func createTags(c *Call) (any, error) {
	tags, err := parseTags(c.Params, "Tag")
	if err != nil {
		return nil, err
	}
	return c.retag(func(labels map[string]string) {
		maps.Copy(labels, tags)
	})
}

func deleteTags(c *Call) (any, error) {
	del := map[string]*string{}
	for _, s := range c.Params.Structs("Tag") {
		k := s["Key"]
		if v, ok := s["Value"]; ok {
			del[k] = &v
		} else {
			del[k] = nil
		}
	}
	return c.retag(func(labels map[string]string) {
		for k, v := range del {
			if strings.HasPrefix(k, internalPrefix) {
				continue
			}
			if v == nil || labels[k] == *v {
				delete(labels, k)
			}
		}
	})
}

// retag changes the labels of every object named, through updates.
func (c *Call) retag(change func(map[string]string)) (any, error) {
	objs, err := c.resolveResources()
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := c.authorize(auth.VerbUpdate, o.GetKind()); err != nil {
			return nil, err
		}
	}
	for _, o := range objs {
		labels := maps.Clone(o.Meta().Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		change(labels)
		o.Meta().Labels = labels
		if err := c.update(o); err != nil {
			return nil, fromAPI(err, nil)
		}
	}
	return &Return{Return: true}, nil
}

type tagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type describeTagsResponse struct {
	Response
	Tags      []tagDescription `xml:"tagSet>item"`
	NextToken string           `xml:"nextToken,omitempty"`
}

var tagFilters = filterSet[tagDescription]{
	"key":           func(t tagDescription) []string { return []string{t.Key} },
	"value":         func(t tagDescription) []string { return []string{t.Value} },
	"resource-id":   func(t tagDescription) []string { return []string{t.ResourceID} },
	"resource-type": func(t tagDescription) []string { return []string{t.ResourceType} },
}

func describeTags(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, tagFilters, nil)
	if err != nil {
		return nil, err
	}
	var all []tagDescription
	for _, t := range taggables {
		if !c.allowed(auth.VerbList, t.kind) {
			continue
		}
		objs, err := c.list(t.kind, nil)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			id := idOf(t.prefix, o)
			for _, tag := range tagSet(o.Meta().Labels) {
				d := tagDescription{ResourceID: id, ResourceType: t.resourceType, Key: tag.Key, Value: tag.Value}
				if keep(d) {
					all = append(all, d)
				}
			}
		}
	}
	page, next, err := paginate(c.Params, all)
	if err != nil {
		return nil, err
	}
	return &describeTagsResponse{Tags: page, NextToken: next}, nil
}
