package admission

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/ipam"
	"github.com/ouroboros-cloud/ouro/store"
)

// tester is the identity the tests admit as.
var tester = &auth.Identity{User: "tester", ClusterAdmin: true}

func freeLoopbackURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// newCloud starts an embedded etcd and fills it as a bootstrapped cloud
// with project "default" (its default network and security group), the
// flavor "small" and a Ready image "busybox".
func newCloud(t *testing.T) (*Admitter, store.Interface) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	etcd, err := etcdembed.Start(ctx, etcdembed.Config{
		DataDir:   t.TempDir(),
		ClientURL: freeLoopbackURL(t),
		PeerURL:   freeLoopbackURL(t),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { etcd.Close() })
	st := store.NewEtcd(etcd.Client())
	a := New(Config{Store: st, IPAM: ipam.New(ipam.Config{Store: st, Offset: ipam.LowestFirst})})
	for _, obj := range []api.Object{
		&api.Project{Metadata: api.ObjectMeta{Name: "default"}},
		&api.Flavor{Metadata: api.ObjectMeta{Name: "small"}, Spec: api.Resources{VCPUs: 1, MemoryMiB: 512, DiskGiB: 5}},
		&api.Image{Metadata: api.ObjectMeta{Name: "busybox", Project: "default"}, Spec: api.ImageSpec{Format: api.FormatOCI},
			Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}},
	} {
		if _, err := st.Create(ctx, obj, store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.EnsureProjectNetworking(ctx, st, "default"); err != nil {
		t.Fatalf("EnsureProjectNetworking: %v", err)
	}
	return a, st
}

func member(name string) *api.Instance {
	return &api.Instance{Metadata: api.ObjectMeta{Name: name, Project: "default", Labels: map[string]string{"app": "web"}},
		Spec: api.InstanceSpec{Image: "busybox", Flavor: "small"}}
}

func TestCreateInstance(t *testing.T) {
	a, st := newCloud(t)
	ctx := context.Background()

	in := member("web-0")
	existed, err := a.CreateInstance(ctx, st, tester, in, "key-1")
	if err != nil || existed {
		t.Fatalf("CreateInstance = %v, %v", existed, err)
	}
	want := api.Interface{Network: DefaultNetworkName, IP: "172.31.0.2", MAC: "0a:58:ac:1f:00:02"}
	if in.Spec.Image != "default/busybox" || in.Spec.Resources.MemoryMiB != 512 || in.Status.Phase != api.PhasePending ||
		in.Status.Driver != api.DriverContainer || in.Metadata.UID == "" || in.Spec.PowerState != api.PowerOn ||
		len(in.Spec.Networks) != 1 || in.Spec.Networks[0].SecurityGroups[0] != DefaultGroupName ||
		len(in.Status.Interfaces) != 1 || in.Status.Interfaces[0] != want {
		t.Errorf("instance not admitted completely: %+v", in)
	}

	again := member("web-0")
	existed, err = a.CreateInstance(ctx, st, tester, again, "key-1")
	if err != nil || !existed || again.Metadata.UID != in.Metadata.UID {
		t.Errorf("retry = %v, %v, uid %s; want the first instance", existed, err, again.Metadata.UID)
	}

	second := member("web-1")
	if _, err := a.CreateInstance(ctx, st, tester, second, ""); err != nil {
		t.Fatal(err)
	}
	if ip := second.Status.Interfaces[0].IP; ip != "172.31.0.3" {
		t.Errorf("second instance got %s, want the next free address 172.31.0.3", ip)
	}
}

func TestCreateInstanceRefusals(t *testing.T) {
	a, st := newCloud(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(*api.Instance)
		status int
		field  string
	}{
		{"bad name", func(in *api.Instance) { in.Metadata.Name = "Web_0" }, http.StatusBadRequest, "metadata.name"},
		{"no project", func(in *api.Instance) { in.Metadata.Project = "nope" }, http.StatusNotFound, ""},
		{"unknown flavor", func(in *api.Instance) { in.Spec.Flavor = "huge" }, http.StatusBadRequest, "spec.flavor"},
		{"unknown image", func(in *api.Instance) { in.Spec.Image = "alpine" }, http.StatusBadRequest, "spec.image"},
		{"unknown network", func(in *api.Instance) { in.Spec.Networks = []api.NetworkAttachment{{Network: "lan"}} }, http.StatusBadRequest, "spec.networks[0].network"},
		{"unknown group", func(in *api.Instance) {
			in.Spec.Networks = []api.NetworkAttachment{{Network: DefaultNetworkName, SecurityGroups: []string{"web"}}}
		}, http.StatusBadRequest, "spec.networks[0].securityGroups[0]"},
		{"address outside", func(in *api.Instance) {
			in.Spec.Networks = []api.NetworkAttachment{{Network: DefaultNetworkName, IP: "10.0.0.5"}}
		}, http.StatusBadRequest, "spec.networks[0].ip"},
		{"unknown key pair", func(in *api.Instance) { in.Spec.KeyName = "laptop" }, http.StatusBadRequest, "spec.keyName"},
		{"public keys set", func(in *api.Instance) { in.Spec.PublicKeys = []string{"ssh-ed25519 AAAA"} }, http.StatusBadRequest, "spec.publicKeys"},
		{"bad env", func(in *api.Instance) { in.Spec.Env = []string{"1X=y"} }, http.StatusBadRequest, "spec.env[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := member("web-9")
			tt.change(in)
			_, err := a.CreateInstance(ctx, st, tester, in, "")
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Field != tt.field {
				t.Fatalf("CreateInstance = %v; want %d on %q", err, tt.status, tt.field)
			}
		})
	}
	objs, _, err := st.List(ctx, api.InstanceKind, "", store.ListOptions{})
	if err != nil || len(objs) != 0 {
		t.Errorf("refused creates stored %d instances (%v)", len(objs), err)
	}
	if _, err := a.CreateInstance(ctx, st, nil, member("web-9"), ""); err == nil {
		t.Error("a create without an identity was admitted")
	}
}

func TestValidateTemplate(t *testing.T) {
	a, _ := newCloud(t)
	ctx := context.Background()
	group := func(change func(*api.InstanceGroup)) *api.InstanceGroup {
		g := &api.InstanceGroup{Metadata: api.ObjectMeta{Name: "web", Project: "default"},
			Spec: api.InstanceGroupSpec{Count: 2, Template: api.InstanceTemplate{Image: "busybox", Flavor: "small"}}}
		change(g)
		return g
	}
	g := group(func(*api.InstanceGroup) {})
	if err := a.ValidateGroup(ctx, tester, nil, g); err != nil {
		t.Fatalf("ValidateGroup: %v", err)
	}
	if g.Spec.Template.Image != "default/busybox" || len(g.Spec.Template.Networks) != 1 {
		t.Errorf("template not resolved: %+v", g.Spec.Template)
	}
	tests := []struct {
		name   string
		change func(*api.InstanceGroup)
		field  string
	}{
		{"unknown flavor", func(g *api.InstanceGroup) { g.Spec.Template.Flavor = "huge" }, "spec.template.flavor"},
		{"fixed address", func(g *api.InstanceGroup) {
			g.Spec.Template.Networks = []api.NetworkAttachment{{Network: DefaultNetworkName, IP: "172.31.0.9"}}
		}, "spec.template.networks[0].ip"},
		{"reserved label", func(g *api.InstanceGroup) { g.Spec.Template.Labels = map[string]string{"ouro.dev/x": "y"} }, "spec.template.labels.ouro.dev/x"},
		{"count", func(g *api.InstanceGroup) { g.Spec.Count = -1 }, "spec.count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.ValidateGroup(ctx, tester, nil, group(tt.change))
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Field != tt.field {
				t.Fatalf("ValidateGroup = %v; want an error on %q", err, tt.field)
			}
		})
	}
}

func TestTemplateError(t *testing.T) {
	tests := []struct{ in, want string }{
		{"spec.flavor", "spec.template.flavor"},
		{"spec.networks[1].securityGroups[0]", "spec.template.networks[1].securityGroups[0]"},
		{"spec.healthCheck.port", "spec.healthCheck.port"},
		{"spec.placement.hostSelector", "spec.placement.hostSelector"},
		{"metadata.name", "metadata.name"},
	}
	for _, tt := range tests {
		var ae *api.Error
		if !errors.As(templateError(api.Invalid(tt.in, "hint", "bad")), &ae) || ae.Field != tt.want {
			t.Errorf("templateError(%s) = %+v, want field %s", tt.in, ae, tt.want)
		}
	}
}

func TestValidateInstanceUpdate(t *testing.T) {
	a := New(Config{})
	old := &api.Instance{Spec: api.InstanceSpec{Image: "default/busybox", Flavor: "small", PowerState: api.PowerOn,
		KeyName: "laptop", PublicKeys: []string{"ssh-ed25519 AAAA laptop"}, RebootRequests: 2,
		Networks: []api.NetworkAttachment{{Network: "default", SecurityGroups: []string{"default"}}}}}
	tests := []struct {
		name   string
		change func(*api.InstanceSpec)
		field  string // "" when admitted
	}{
		{"power off", func(s *api.InstanceSpec) { s.PowerState = api.PowerOff }, ""},
		{"networks left out", func(s *api.InstanceSpec) { s.Networks = nil }, ""},
		{"public keys left out", func(s *api.InstanceSpec) { s.PublicKeys = nil }, ""},
		{"reboot", func(s *api.InstanceSpec) { s.RebootRequests = 3 }, ""},
		{"image", func(s *api.InstanceSpec) { s.Image = "default/alpine" }, "spec.image"},
		{"flavor", func(s *api.InstanceSpec) { s.Flavor = "large" }, "spec.flavor"},
		{"key name", func(s *api.InstanceSpec) { s.KeyName = "other" }, "spec.keyName"},
		{"user data", func(s *api.InstanceSpec) { s.UserData = "#!/bin/sh" }, "spec.userData"},
		{"networks", func(s *api.InstanceSpec) { s.Networks = []api.NetworkAttachment{{Network: "lan"}} }, "spec.networks"},
		{"reboot requests shrink", func(s *api.InstanceSpec) { s.RebootRequests = 1 }, "spec.rebootRequests"},
		{"power state", func(s *api.InstanceSpec) { s.PowerState = "Paused" }, "spec.powerState"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &api.Instance{Spec: old.Spec}
			in.Spec.Networks = append([]api.NetworkAttachment(nil), old.Spec.Networks...)
			tt.change(&in.Spec)
			err := a.ValidateInstanceUpdate(context.Background(), tester, old, in)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("ValidateInstanceUpdate: %v", err)
				}
				if !jsonEqual(in.Spec.Networks, old.Spec.Networks) || len(in.Spec.PublicKeys) != 1 {
					t.Errorf("kept fields lost: %+v", in.Spec)
				}
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Field != tt.field {
				t.Fatalf("ValidateInstanceUpdate = %v; want an error on %q", err, tt.field)
			}
		})
	}
}
