package ec2

import (
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Tags are kept on the object as labels where a label can hold them
// (api.ValidateLabels: keys "[prefix/]name" of letters, digits, '-',
// '_', '.', values of at most 63 such characters), so that selectors
// match them, and as annotations under tagAnnotationPrefix otherwise: a
// tag "Name" = "My web server" is the annotation
// "tag.ec2.ouro.dev/Name". Tags keep AWS's limits (maxTags per object,
// keys of 1 to 128 characters not starting "aws:", values of at most
// 256). The "Name" tag names objects made through EC2 when it is a
// valid resource name.

// internalPrefix starts the labels that keep EC2 attributes with no
// field of their own (disableApiTermination, …); they are not tags.
const internalPrefix = "ec2.ouro.dev/"

// tagAnnotationPrefix starts the annotations that keep tags a label
// cannot hold.
const tagAnnotationPrefix = "tag.ec2.ouro.dev/"

// AWS's limits on tags.
const (
	maxTags          = 50
	maxTagKeyChars   = 128
	maxTagValueChars = 256
)

// Tag is one tag in answers (tagSet/item).
type Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// tagsOf returns an object's tags: its labels less the internal ones,
// and its tag annotations.
func tagsOf(m *api.ObjectMeta) map[string]string {
	out := make(map[string]string, len(m.Labels)+len(m.Annotations))
	for k, v := range m.Labels {
		if !strings.HasPrefix(k, internalPrefix) {
			out[k] = v
		}
	}
	for k, v := range m.Annotations {
		if key, ok := strings.CutPrefix(k, tagAnnotationPrefix); ok {
			out[key] = v
		}
	}
	return out
}

// tagSet returns an object's tags in key order.
func tagSet(m *api.ObjectMeta) []Tag {
	tags := tagsOf(m)
	out := make([]Tag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		out = append(out, Tag{Key: k, Value: tags[k]})
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// asLabel reports whether the tag k = v is kept as a label.
func asLabel(k, v string) bool {
	return api.ValidateLabels("", map[string]string{k: v}) == nil
}

// setTag gives m the tag k = v, replacing any value it had.
func setTag(m *api.ObjectMeta, k, v string) {
	removeTag(m, k)
	if asLabel(k, v) {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[k] = v
		return
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[tagAnnotationPrefix+k] = v
}

// removeTag takes the tag k off m.
func removeTag(m *api.ObjectMeta, k string) {
	if !strings.HasPrefix(k, internalPrefix) {
		delete(m.Labels, k)
	}
	delete(m.Annotations, tagAnnotationPrefix+k)
	if len(m.Labels) == 0 {
		m.Labels = nil
	}
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
}

// withTags returns m, its maps copied, with tags added.
func withTags(m api.ObjectMeta, tags map[string]string) api.ObjectMeta {
	m.Labels, m.Annotations = maps.Clone(m.Labels), maps.Clone(m.Annotations)
	for k, v := range tags {
		setTag(&m, k, v)
	}
	return m
}

// checkTags refuses tags AWS would refuse, and the reserved keys.
func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return Errorf("TagLimitExceeded", "at most %d tags may be given, %d were", maxTags, len(tags))
	}
	for _, k := range sortedKeys(tags) {
		v := tags[k]
		switch {
		case strings.HasPrefix(k, internalPrefix):
			return invalidValue("the tag key '%s' is reserved: keys starting %s hold EC2 attributes", clip(k), internalPrefix)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return invalidValue("the tag key '%s' is reserved: keys starting aws: are AWS's", clip(k))
		case !utf8.ValidString(k) || utf8.RuneCountInString(k) > maxTagKeyChars || strings.IndexFunc(k, unicode.IsControl) >= 0:
			return invalidValue("the tag key '%s' is not valid: keys are 1 to %d characters of text", clip(k), maxTagKeyChars)
		case !utf8.ValidString(v) || utf8.RuneCountInString(v) > maxTagValueChars:
			return invalidValue("the value of tag '%s' is not valid: values are at most %d characters of text", clip(k), maxTagValueChars)
		}
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
	return c.retag(func(m *api.ObjectMeta) {
		for k, v := range tags {
			setTag(m, k, v)
		}
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
	return c.retag(func(m *api.ObjectMeta) {
		tags := tagsOf(m)
		for k, v := range del {
			if have, ok := tags[k]; ok && (v == nil || have == *v) {
				removeTag(m, k)
			}
		}
	})
}

// retag changes the tags of every object named, through updates.
func (c *Call) retag(change func(*api.ObjectMeta)) (any, error) {
	objs, err := c.resolveResources()
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := c.authorize(auth.VerbUpdate, o.GetKind()); err != nil {
			return nil, err
		}
	}
	ids := c.Params.List("ResourceId")
	for i, o := range objs {
		m := o.Meta()
		m.Labels, m.Annotations = maps.Clone(m.Labels), maps.Clone(m.Annotations)
		change(m)
		if len(tagsOf(m)) > maxTags {
			return nil, Errorf("TagLimitExceeded", "%s would have more than %d tags", clip(ids[i]), maxTags)
		}
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
			for _, tag := range tagSet(o.Meta()) {
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
