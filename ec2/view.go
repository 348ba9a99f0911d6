package ec2

import (
	"errors"
	"strings"
	"sync"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// view translates between names (what objects refer to each other by)
// and EC2 ids within one call, reading each kind of the project at most
// once.
type view struct {
	c        *Call
	networks map[string]*api.Network
	groups   map[string]*api.SecurityGroup
	images   map[string]*api.Image // by "project/name"
	// public are the public images by name, derived from images when a
	// bare name is first looked up. Were there several of a name (made
	// public after instances named it; admission refuses the ambiguous
	// name since), the one of the project first in name order.
	public map[string]*api.Image
	hosts  map[string]*api.Host
	fips   map[string]*api.FloatingIP // by instance name
	vpcs   map[string]*api.VPC        // by UID
	loaded map[*api.Kind]bool
	// shared views read from the handler's Lister, when it has one: their
	// objects are shared and must not be modified.
	shared bool
}

func (c *Call) view() *view { return &view{c: c, loaded: map[*api.Kind]bool{}} }

// sharedView is a view whose objects are only read: it may take them
// from memory (Config.Lists).
func (c *Call) sharedView() *view { return &view{c: c, loaded: map[*api.Kind]bool{}, shared: true} }

// viewKinds are what an instance's answer refers to.
var viewKinds = []*api.Kind{api.NetworkKind, api.SecurityGroupKind, api.ImageKind, api.HostKind, api.FloatingIPKind, api.VPCKind}

// preload loads kinds at once, each in a goroutine of its own: one
// round trip's latency for all, not one per kind.
func (v *view) preload(kinds ...*api.Kind) error {
	subs := make([]*view, len(kinds))
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	for i, k := range kinds {
		if v.loaded[k] {
			continue
		}
		subs[i] = &view{c: v.c, loaded: map[*api.Kind]bool{}, shared: v.shared}
		wg.Go(func() { errs[i] = subs[i].load(k) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, sub := range subs {
		if sub == nil {
			continue
		}
		v.loaded[kinds[i]] = true
		switch kinds[i] {
		case api.NetworkKind:
			v.networks = sub.networks
		case api.SecurityGroupKind:
			v.groups = sub.groups
		case api.ImageKind:
			v.images = sub.images
		case api.HostKind:
			v.hosts = sub.hosts
		case api.FloatingIPKind:
			v.fips = sub.fips
		case api.VPCKind:
			v.vpcs = sub.vpcs
		}
	}
	return nil
}

func (v *view) load(k *api.Kind) error {
	if v.loaded[k] {
		return nil
	}
	v.loaded[k] = true
	switch k {
	case api.NetworkKind:
		v.networks = map[string]*api.Network{}
		objs, err := v.c.listFor(k, v.shared)
		if err != nil {
			return err
		}
		for _, o := range objs {
			v.networks[o.Meta().Name] = o.(*api.Network)
		}
	case api.SecurityGroupKind:
		v.groups = map[string]*api.SecurityGroup{}
		objs, err := v.c.listFor(k, v.shared)
		if err != nil {
			return err
		}
		for _, o := range objs {
			v.groups[o.Meta().Name] = o.(*api.SecurityGroup)
		}
	case api.ImageKind:
		v.images = map[string]*api.Image{}
		imgs, err := v.c.images(v.shared)
		if err != nil {
			return err
		}
		for _, img := range imgs {
			v.images[img.Metadata.Project+"/"+img.Metadata.Name] = img
		}
	case api.HostKind:
		v.hosts = map[string]*api.Host{}
		objs, err := v.c.listFor(k, v.shared)
		if err != nil {
			return err
		}
		for _, o := range objs {
			v.hosts[o.Meta().Name] = o.(*api.Host)
		}
	case api.VPCKind:
		v.vpcs = map[string]*api.VPC{}
		objs, err := v.c.listFor(k, v.shared)
		if err != nil {
			return err
		}
		for _, o := range objs {
			v.vpcs[o.Meta().UID] = o.(*api.VPC)
		}
	case api.FloatingIPKind:
		v.fips = map[string]*api.FloatingIP{}
		objs, err := v.c.listFor(k, v.shared)
		if err != nil {
			return err
		}
		for _, o := range objs {
			f := o.(*api.FloatingIP)
			if f.Spec.Instance != "" {
				v.fips[f.Spec.Instance] = f
			}
		}
	}
	return nil
}

// subnetID is the EC2 subnet id of a network name ("" if unknown).
func (v *view) subnetID(network string) string {
	if v.load(api.NetworkKind) != nil {
		return ""
	}
	if n := v.networks[network]; n != nil {
		return subnetIDOf(n)
	}
	return ""
}

// vpcID is the EC2 VPC id of a network name.
func (v *view) vpcID(network string) string {
	if v.load(api.NetworkKind) != nil {
		return ""
	}
	if n := v.networks[network]; n != nil {
		return vpcIDOf(v.c, n)
	}
	return ""
}

// dnsHostnames reports whether instances of a network get DNS names:
// its VPC's enableDnsHostnames (true for a network in no VPC, as in the
// default VPC).
func (v *view) dnsHostnames(network string) bool {
	if v.load(api.NetworkKind) != nil {
		return false
	}
	n := v.networks[network]
	switch {
	case n == nil:
		return false
	case n.Status.VPCUID == "":
		return true
	case v.load(api.VPCKind) != nil:
		return false
	}
	vpc := v.vpcs[n.Status.VPCUID]
	return vpc != nil && vpc.DNSSupport() && vpc.DNSHostnames()
}

// subnetIDOf and vpcIDOf map networks to subnets and VPCs. For now a
// network is a subnet of its project's one VPC.
var (
	subnetIDOf = func(n *api.Network) string { return idOf(PrefixSubnet, n) }
	vpcIDOf    = func(c *Call, n *api.Network) string { return ID(PrefixVPC, "project/"+n.Metadata.Project) }
)

// networkBySubnetOnce finds the network of a subnet id (or, for
// convenience, of a network name).
func (v *view) networkBySubnetOnce(id string) (*api.Network, error) {
	if err := v.load(api.NetworkKind); err != nil {
		return nil, err
	}
	for _, n := range v.networks {
		if subnetIDOf(n) == id || n.Metadata.Name == id && !strings.HasPrefix(id, PrefixSubnet+"-") {
			return n, nil
		}
	}
	return nil, notFound("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", clip(id))
}

// groupID is the EC2 id of a security group name.
func (v *view) groupID(name string) string {
	if v.load(api.SecurityGroupKind) != nil {
		return ""
	}
	if g := v.groups[name]; g != nil {
		return idOf(PrefixSecurityGroup, g)
	}
	return ""
}

// groupByIDOnce finds a security group by id.
func (v *view) groupByIDOnce(id string) (*api.SecurityGroup, error) {
	if err := v.load(api.SecurityGroupKind); err != nil {
		return nil, err
	}
	for _, g := range v.groups {
		if idOf(PrefixSecurityGroup, g) == id {
			return g, nil
		}
	}
	return nil, notFound("InvalidGroup.NotFound", "The security group '%s' does not exist", clip(id))
}

// groupByNameOnce finds a security group by name.
func (v *view) groupByNameOnce(name string) (*api.SecurityGroup, error) {
	if err := v.load(api.SecurityGroupKind); err != nil {
		return nil, err
	}
	if g := v.groups[name]; g != nil {
		return g, nil
	}
	return nil, notFound("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC", clip(name))
}

// imageID is the EC2 id of an instance's image reference: "project/name",
// or "name" of the caller's project, else of a public image (as
// admission resolves it).
func (v *view) imageID(ref string) string {
	if v.load(api.ImageKind) != nil {
		return ""
	}
	if img := v.images[ref]; img != nil {
		return idOf(PrefixImage, img)
	}
	if strings.Contains(ref, "/") {
		return ""
	}
	if img := v.images[v.c.Project+"/"+ref]; img != nil {
		return idOf(PrefixImage, img)
	}
	if v.public == nil {
		v.public = map[string]*api.Image{}
		for _, img := range v.images {
			if cur := v.public[img.Metadata.Name]; img.Spec.Public && (cur == nil || img.Metadata.Project < cur.Metadata.Project) {
				v.public[img.Metadata.Name] = img
			}
		}
	}
	if img := v.public[ref]; img != nil {
		return idOf(PrefixImage, img)
	}
	return ""
}

// imageByIDOnce finds an image the caller may use by id (or by name).
func (v *view) imageByIDOnce(id string) (*api.Image, error) {
	if err := v.load(api.ImageKind); err != nil {
		return nil, err
	}
	for _, img := range v.images {
		if idOf(PrefixImage, img) == id {
			return img, nil
		}
	}
	if !strings.HasPrefix(id, PrefixImage+"-") {
		if img := v.images[v.c.Project+"/"+id]; img != nil {
			return img, nil
		}
		for _, img := range v.images {
			if img.Metadata.Name == id {
				return img, nil
			}
		}
	}
	return nil, notFound("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", clip(id))
}

// zone is the availability zone of a host.
func (v *view) zone(host string) string {
	if host == "" || v.load(api.HostKind) != nil {
		return api.ZoneDefault
	}
	if h := v.hosts[host]; h != nil {
		if z := h.Metadata.Labels[api.LabelZone]; z != "" {
			return z
		}
	}
	return api.ZoneDefault
}

// floatingIP is the floating IP associated with an instance, or nil.
func (v *view) floatingIP(instance string) *api.FloatingIP {
	if v.load(api.FloatingIPKind) != nil {
		return nil
	}
	return v.fips[instance]
}

// images lists the images the caller may use: the project's and the
// public ones (shared with the Lister when shared).
func (c *Call) images(shared bool) ([]*api.Image, error) {
	keep := func(o api.Object) bool {
		return o.Meta().Project == c.Project || o.(*api.Image).Spec.Public
	}
	if shared && !c.allowed(auth.VerbList, api.ImageKind) {
		return nil, unauthorized()
	}
	all, inMemory := c.h.memory.list(api.ImageKind, "")
	if shared && !inMemory && c.h.cfg.Lists != nil {
		var err error
		if all, err = c.h.cfg.Lists.Objects(c.ctx, api.ImageKind, ""); err != nil {
			return nil, err
		}
		inMemory = true
	}
	if shared && inMemory {
		var out []*api.Image
		for _, o := range all {
			if keep(o) {
				out = append(out, o.(*api.Image))
			}
		}
		return out, nil
	}
	own, err := c.list(api.ImageKind, nil)
	if err != nil {
		return nil, err
	}
	var out []*api.Image
	for _, o := range own {
		out = append(out, o.(*api.Image))
	}
	public, _, err := c.h.cfg.Store.List(c.ctx, api.ImageKind, "", storeFilter(func(o api.Object) bool {
		return o.(*api.Image).Spec.Public && o.Meta().Project != c.Project
	}))
	if err != nil {
		return nil, err
	}
	for _, o := range public {
		out = append(out, o.(*api.Image))
	}
	return out, nil
}

// networkBySubnet finds by id, reading the store when memory misses.
func (v *view) networkBySubnet(id string) (*api.Network, error) {
	return retryFresh(v, api.NetworkKind, func() (*api.Network, error) { return v.networkBySubnetOnce(id) })
}

// groupByID finds by id, reading the store when memory misses.
func (v *view) groupByID(id string) (*api.SecurityGroup, error) {
	return retryFresh(v, api.SecurityGroupKind, func() (*api.SecurityGroup, error) { return v.groupByIDOnce(id) })
}

// groupByName finds by name, reading the store when memory misses.
func (v *view) groupByName(name string) (*api.SecurityGroup, error) {
	return retryFresh(v, api.SecurityGroupKind, func() (*api.SecurityGroup, error) { return v.groupByNameOnce(name) })
}

// imageByID finds by id, reading the store when memory misses.
func (v *view) imageByID(id string) (*api.Image, error) {
	return retryFresh(v, api.ImageKind, func() (*api.Image, error) { return v.imageByIDOnce(id) })
}

// retryFresh calls find, and once more after reading kind k from the
// store if a view from memory did not find it: what memory shows trails
// the store a little.
func retryFresh[T any](v *view, k *api.Kind, find func() (T, error)) (T, error) {
	out, err := find()
	var e *Error
	if err != nil && errors.As(err, &e) && strings.HasSuffix(e.Code, ".NotFound") && v.reload(k) {
		return find()
	}
	return out, err
}

// reload reads kind k again from the store into a shared view; it
// reports whether it did.
func (v *view) reload(k *api.Kind) bool {
	if !v.shared {
		return false
	}
	fresh := &view{c: v.c, loaded: map[*api.Kind]bool{}}
	if fresh.load(k) != nil {
		return false
	}
	switch k {
	case api.NetworkKind:
		v.networks = fresh.networks
	case api.SecurityGroupKind:
		v.groups = fresh.groups
	case api.ImageKind:
		v.images, v.public = fresh.images, nil
	}
	return true
}
