package stack_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/controller"
	ctlstack "github.com/ouroboros-cloud/ouro/controller/stack"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
	"golang.org/x/crypto/ssh"
)

const waitLimit = 30 * time.Second

// rig is the API server over a real etcd with the leader's controllers
// (the stack controller among them) running, a floating IP pool, an
// image, and a member of project default, alice, who applies stacks.
type rig struct {
	t     *testing.T
	a     *apitest.Server
	alice *client.Client
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigWith(t, nil, nil)
}

// newRigWith is newRig with the controllers' store and the stack
// controller's writer wrapped (either may be nil).
func newRigWith(t *testing.T, wrapStore func(store.Interface) store.Interface, wrapWriter func(ctlstack.ObjectWriter) ctlstack.ObjectWriter) *rig {
	t.Helper()
	a := apitest.Start(t, apitest.Config{})
	a.Do(t, "POST", "/v1/floatingippools", &api.FloatingIPPool{Metadata: api.ObjectMeta{Name: "ext"},
		Spec: api.FloatingIPPoolSpec{CIDR: "203.0.113.0/24", Start: "203.0.113.10", End: "203.0.113.200"}}, nil)
	a.Create(t, &api.Image{Metadata: api.ObjectMeta{Name: "busybox", Project: "default"},
		Spec:   api.ImageSpec{Format: api.FormatOCI},
		Status: api.ImageStatus{Phase: "Ready", Driver: api.DriverContainer}})
	r := &rig{t: t, a: a, alice: a.Client(t, a.Token(t, "alice", "default", api.RoleMember))}

	ctx, cancel := context.WithCancel(context.Background())
	guard := etcdtest.NewGuard(t, a.Etcd, "/test/leader")
	st := a.Store.WithGuard(guard)
	if wrapStore != nil {
		st = wrapStore(st)
	}
	var w ctlstack.ObjectWriter = a.API
	if wrapWriter != nil {
		w = wrapWriter(w)
	}
	done := make(chan error, 1)
	go func() {
		done <- controller.RunLeader(ctx, st, controller.Config{
			Logger: etcdtest.Quiet(), Resync: time.Second, StackWriter: w})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunLeader: %v", err)
		}
	})
	return r
}

// res is a stack resource with its spec given as JSON.
func res(kind, name, spec string) api.StackResource {
	return api.StackResource{Kind: kind, Name: name, Spec: json.RawMessage(spec), Source: strings.ToLower(kind) + ".yaml:1"}
}

// webSpec is a network, a security group, an instance, its floating IP
// and a group whose members are told the instance's address.
func webSpec(count, port int) api.StackSpec {
	return api.StackSpec{
		Resources: []api.StackResource{
			res("InstanceGroup", "web", `{"count":`+itoa(count)+`,"template":{"image":"busybox","flavor":"tiny",`+
				`"networks":[{"network":"web","securityGroups":["web"]}],"userData":"backend=${Instance/db.status.interfaces[0].ip}"}}`),
			res("FloatingIP", "db", `{"instance":"db"}`),
			res("Instance", "db", `{"image":"busybox","flavor":"tiny","networks":[{"network":"web","securityGroups":["web"]}]}`),
			res("SecurityGroup", "web", `{"rules":[{"direction":"ingress","protocol":"tcp","portMin":`+itoa(port)+`,"portMax":`+itoa(port)+`,"cidr":"0.0.0.0/0"}]}`),
			res("Network", "web", `{"cidr":"10.20.0.0/24"}`),
		},
		Outputs: map[string]string{
			"db":  "${Instance/db.status.interfaces[0].ip}",
			"url": "http://${FloatingIP/db.status.address}/",
		},
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return c
}

// apply creates or updates stack name as cl.
func (r *rig) apply(cl *client.Client, name string, spec api.StackSpec) error {
	r.t.Helper()
	s := &api.Stack{Metadata: api.ObjectMeta{Name: name, Project: "default"}, Spec: spec}
	cur := &api.Stack{}
	if err := cl.Get(ctx(r.t), api.StackKind, "default", name, cur); err == nil {
		s.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		return cl.Update(ctx(r.t), s)
	} else if !api.IsNotFound(err) {
		return err
	}
	_, err := cl.Create(ctx(r.t), s, client.CreateOptions{})
	return err
}

// stack reads a stack from the store; nil when it is gone.
func (r *rig) stack(name string) *api.Stack {
	r.t.Helper()
	s := &api.Stack{}
	if err := r.a.Store.Get(ctx(r.t), api.StackKind, "default", name, s); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		r.t.Fatal(err)
	}
	return s
}

// applied waits until stack name is Applied at its current generation.
func (r *rig) applied(name string) *api.Stack {
	r.t.Helper()
	var s *api.Stack
	wait.ForDetail(r.t, waitLimit, "stack "+name+" Applied", func() (bool, string) {
		s = r.stack(name)
		if s == nil {
			return false, "no stack"
		}
		return s.Status.Phase == api.StackApplied && s.Status.ObservedGeneration == s.Metadata.Generation,
			s.Status.Phase + ": " + s.Status.Message
	})
	return s
}

// object reads an object of project default (or the cluster); nil when
// it does not exist.
func (r *rig) object(k *api.Kind, name string) api.Object {
	r.t.Helper()
	obj := k.New()
	if err := r.a.Store.Get(ctx(r.t), k, "default", name, obj); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		r.t.Fatal(err)
	}
	return obj
}

// versions returns the resourceVersions of the given objects.
func (r *rig) versions(names map[*api.Kind]string) map[string]string {
	r.t.Helper()
	out := map[string]string{}
	for k, n := range names {
		if o := r.object(k, n); o != nil {
			out[k.Name+"/"+n] = o.Meta().ResourceVersion
		}
	}
	return out
}

// count returns how many objects of kind k in project default carry
// stack name's label.
func (r *rig) count(k *api.Kind, stackName string) int {
	r.t.Helper()
	objs, _, err := r.a.Store.List(ctx(r.t), k, "default", store.ListOptions{Filter: func(o api.Object) bool {
		return o.Meta().Labels[api.LabelStack] == stackName
	}})
	if err != nil {
		r.t.Fatal(err)
	}
	return len(objs)
}

// testKey is a valid OpenSSH public key.
var testKey = func() string {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}()

func asAPIError(err error, target **api.Error) bool { return errors.As(err, target) }
