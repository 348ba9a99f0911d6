package stack_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	ctlstack "github.com/ouroboros-cloud/ouro/controller/stack"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/store"
)

// levelSpec has two dependency levels: four networks and a security
// group, then two security groups whose rules name the first.
func levelSpec() api.StackSpec {
	rs := []api.StackResource{}
	for i := 1; i <= 4; i++ {
		rs = append(rs, res("Network", fmt.Sprintf("n%d", i), fmt.Sprintf(`{"cidr":"10.6%d.0.0/24"}`, i)))
	}
	rs = append(rs, res("SecurityGroup", "base", `{}`))
	for _, n := range []string{"app1", "app2"} {
		rs = append(rs, res("SecurityGroup", n, `{"rules":[{"direction":"ingress","protocol":"tcp","portMin":80,"portMax":80,"sourceGroup":"base"}]}`))
	}
	return api.StackSpec{Resources: rs}
}

var (
	level0 = []string{"Network/n1", "Network/n2", "Network/n3", "Network/n4", "SecurityGroup/base"}
	level1 = []string{"SecurityGroup/app1", "SecurityGroup/app2"}
)

// journal records, in order, the stack's status writes and the stack
// controller's object writes.
type journal struct {
	mu     sync.Mutex
	events []event
}

// event is a status write (pending: the resources Pending in it) or a
// create or delete of resource ("Kind/name").
type event struct {
	op       string // "status", "create", "delete"
	resource string
	pending  []string
}

func (j *journal) add(e event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) snapshot() []event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// journalStore journals the writes of stack name.
type journalStore struct {
	store.Interface
	j    *journal
	name string
}

func (s *journalStore) Update(ctx context.Context, obj api.Object) error {
	if st, ok := obj.(*api.Stack); ok && st.Metadata.Name == s.name {
		var pending []string
		for _, e := range st.Status.Resources {
			if e.State == api.ResourcePending {
				pending = append(pending, e.Kind+"/"+e.Name)
			}
		}
		s.j.add(event{op: "status", pending: pending})
	}
	return s.Interface.Update(ctx, obj)
}

// hookWriter journals creates and deletes and lets a test stand in for
// them: create and del, when set, are called with the real write.
type hookWriter struct {
	ctlstack.ObjectWriter
	j      *journal
	create func(resource string, real func() error) error
	del    func(resource string, real func() (bool, error)) (bool, error)
}

func (w *hookWriter) CreateObject(ctx context.Context, st store.Interface, id *auth.Identity, obj api.Object, key string) (bool, error) {
	resource := obj.GetKind().Name + "/" + obj.Meta().Name
	w.j.add(event{op: "create", resource: resource})
	var existed bool
	real := func() error {
		var err error
		existed, err = w.ObjectWriter.CreateObject(ctx, st, id, obj, key)
		return err
	}
	if w.create == nil {
		return existed, real()
	}
	return existed, w.create(resource, real)
}

func (w *hookWriter) DeleteObject(ctx context.Context, st store.Interface, id *auth.Identity, k *api.Kind, project, name string) (bool, error) {
	resource := k.Name + "/" + name
	w.j.add(event{op: "delete", resource: resource})
	real := func() (bool, error) { return w.ObjectWriter.DeleteObject(ctx, st, id, k, project, name) }
	if w.del == nil {
		return real()
	}
	return w.del(resource, real)
}

// journaledRig is a rig whose stack name's status writes and whose stack
// controller's writes go to the returned journal, through w.
func journaledRig(t *testing.T, name string, w *hookWriter) (*rig, *journal) {
	t.Helper()
	j := &journal{}
	w.j = j
	r := newRigWith(t,
		func(st store.Interface) store.Interface { return &journalStore{Interface: st, j: j, name: name} },
		func(real ctlstack.ObjectWriter) ctlstack.ObjectWriter { w.ObjectWriter = real; return w })
	return r, j
}

// TestStackLevelPendingFirst: each level's creates are recorded Pending
// in one status write made before any of them, after the creates of the
// level before.
func TestStackLevelPendingFirst(t *testing.T) {
	r, j := journaledRig(t, "lv", &hookWriter{})
	if err := r.apply(r.alice, "lv", levelSpec()); err != nil {
		t.Fatal(err)
	}
	r.applied("lv")
	events := j.snapshot()
	firstPending := map[string]int{}
	created := map[string]int{}
	pendingWrites := 0
	for i, e := range events {
		switch e.op {
		case "status":
			if len(e.pending) > 0 {
				pendingWrites++
			}
			for _, p := range e.pending {
				if _, ok := firstPending[p]; !ok {
					firstPending[p] = i
				}
			}
		case "create":
			if _, dup := created[e.resource]; dup {
				t.Errorf("%s created twice", e.resource)
			}
			created[e.resource] = i
		}
	}
	if pendingWrites != 2 {
		t.Errorf("%d status writes with Pending resources, want 2 (one per level): %+v", pendingWrites, events)
	}
	for _, level := range [][]string{level0, level1} {
		w, ok := firstPending[level[0]]
		for _, res := range level {
			p, ok2 := firstPending[res]
			c, ok3 := created[res]
			switch {
			case !ok || !ok2 || !ok3:
				t.Errorf("%s: never recorded Pending or never created: %+v", res, events)
			case p != w:
				t.Errorf("%s recorded Pending in write %d, %s in write %d: want one write per level", res, p, level[0], w)
			case c < p:
				t.Errorf("%s created (event %d) before it was recorded Pending (event %d)", res, c, p)
			}
		}
	}
	for _, res := range level0 {
		if created[res] > firstPending[level1[0]] {
			t.Errorf("%s created after level 1 was recorded Pending", res)
		}
	}
}

// barrier lets n callers through together, or each after a deadline.
type barrier struct {
	mu       sync.Mutex
	n        int
	full     chan struct{}
	timedOut bool
}

func newBarrier(n int) *barrier { return &barrier{n: n, full: make(chan struct{})} }

func (b *barrier) wait(deadline time.Duration) {
	b.mu.Lock()
	b.n--
	if b.n == 0 {
		close(b.full)
	}
	b.mu.Unlock()
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case <-b.full:
	case <-t.C:
		b.mu.Lock()
		b.timedOut = true
		b.mu.Unlock()
	}
}

// TestStackLevelCreatesOverlap: the creates of independent resources are
// made together: the four networks' creates all wait for each other.
func TestStackLevelCreatesOverlap(t *testing.T) {
	b := newBarrier(4)
	w := &hookWriter{create: func(resource string, real func() error) error {
		if slices.Contains(level0[:4], resource) {
			b.wait(10 * time.Second)
		}
		return real()
	}}
	r, _ := journaledRig(t, "ov", w)
	if err := r.apply(r.alice, "ov", levelSpec()); err != nil {
		t.Fatal(err)
	}
	r.applied("ov")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timedOut {
		t.Error("the networks' creates did not overlap: a create waited 10s for the others")
	}
}

// TestStackLevelCrashBeforeCreates: a pass that stops after recording a
// level Pending, with some of its creates made and some not, converges
// without duplicates.
func TestStackLevelCrashBeforeCreates(t *testing.T) {
	var mu sync.Mutex
	tried := map[string]bool{}
	w := &hookWriter{create: func(resource string, real func() error) error {
		mu.Lock()
		first := !tried[resource]
		tried[resource] = true
		mu.Unlock()
		switch {
		case !first:
			return real()
		case resource == "Network/n1" || resource == "Network/n2":
			// Made, but the pass ends (leadership lost) before it hears so.
			if err := real(); err != nil {
				return err
			}
			return store.ErrGuardFailed
		}
		return store.ErrGuardFailed // the pass ended before this create
	}}
	r, j := journaledRig(t, "cr", w)
	if err := r.apply(r.alice, "cr", levelSpec()); err != nil {
		t.Fatal(err)
	}
	s := r.applied("cr")
	if len(s.Status.Resources) != 7 {
		t.Errorf("resources %+v, want 7", s.Status.Resources)
	}
	for _, e := range s.Status.Resources {
		k := api.NetworkKind
		if e.Kind == "SecurityGroup" {
			k = api.SecurityGroupKind
		}
		if o := r.object(k, e.Name); o == nil || o.Meta().UID != e.UID || e.State != api.ResourceCreated {
			t.Errorf("entry %+v: want Created with the object's UID", e)
		}
	}
	if n := r.count(api.NetworkKind, "cr"); n != 4 {
		t.Errorf("%d networks, want 4", n)
	}
	if n := r.count(api.SecurityGroupKind, "cr"); n != 3 {
		t.Errorf("%d security groups, want 3", n)
	}
	creates := map[string]int{}
	for _, e := range j.snapshot() {
		if e.op == "create" {
			creates[e.resource]++
		}
	}
	// n1 and n2 exist after the first pass: found, not made again.
	for res, want := range map[string]int{"Network/n1": 1, "Network/n2": 1, "Network/n3": 2, "SecurityGroup/app1": 2} {
		if creates[res] != want {
			t.Errorf("%s: %d creates, want %d", res, creates[res], want)
		}
	}
}

// TestStackDeleteTogether: deleting a stack issues the deletes of every
// object nothing depends on at once, without waiting for each to be
// gone, and deletes what they depend on only once they are.
func TestStackDeleteTogether(t *testing.T) {
	var mu sync.Mutex
	tried := map[string]bool{}
	w := &hookWriter{del: func(resource string, real func() (bool, error)) (bool, error) {
		mu.Lock()
		first := !tried[resource]
		tried[resource] = true
		mu.Unlock()
		if first {
			return false, nil // still going away
		}
		return real()
	}}
	r, j := journaledRig(t, "del", w)
	if err := r.apply(r.alice, "del", levelSpec()); err != nil {
		t.Fatal(err)
	}
	r.applied("del")
	if err := r.alice.Delete(ctx(t), api.StackKind, "default", "del"); err != nil {
		t.Fatal(err)
	}
	wait.ForDetail(t, waitLimit, "stack del gone", func() (bool, string) {
		s := r.stack("del")
		if s == nil {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %s, %d resources", s.Status.Phase, s.Status.Message, len(s.Status.Resources))
	})
	var deletes []string
	for _, e := range j.snapshot() {
		if e.op == "delete" {
			deletes = append(deletes, e.resource)
		}
	}
	leaves := append(slices.Clone(level0[:4]), level1...)
	if len(deletes) < len(leaves) {
		t.Fatalf("deletes %v", deletes)
	}
	first := slices.Clone(deletes[:len(leaves)])
	slices.Sort(first)
	slices.Sort(leaves)
	if !slices.Equal(first, leaves) {
		t.Errorf("first deletes %v, want every object nothing depends on, %v, before any is tried again", deletes[:len(leaves)], leaves)
	}
	base := slices.Index(deletes, "SecurityGroup/base")
	for _, app := range level1 {
		if last := lastIndex(deletes, app); base < last {
			t.Errorf("deletes %v: base deleted before %s was gone", deletes, app)
		}
	}
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		if r.object(api.NetworkKind, n) != nil {
			t.Errorf("network %s left behind", n)
		}
	}
	for _, n := range []string{"base", "app1", "app2"} {
		if r.object(api.SecurityGroupKind, n) != nil {
			t.Errorf("security group %s left behind", n)
		}
	}
}

func lastIndex(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}
