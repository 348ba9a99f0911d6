package apivip_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/ouroboros-cloud/ouro/apivip"
	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/membership"
)

// twoMembers starts a cluster of two embedded members, a (the leader)
// and b, joined as the servers join (a learner, then promoted).
func twoMembers(t *testing.T) (a, b *etcdembed.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(cfg etcdembed.Config) *etcdembed.Server {
		cfg.DataDir, cfg.ClientURL, cfg.Logger = t.TempDir(), etcdtest.FreeURL(t), etcdtest.Quiet()
		s, err := etcdembed.Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.Name, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	peerA, peerB := etcdtest.FreeURL(t), etcdtest.FreeURL(t)
	a = start(etcdembed.Config{Name: "a", PeerURL: peerA})
	add, err := a.Client().MemberAddAsLearner(ctx, []string{peerB})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			if _, err := a.Client().MemberPromote(ctx, add.Member.ID); err == nil || !strings.Contains(err.Error(), "in sync") {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	b = start(etcdembed.Config{Name: "b", PeerURL: peerB, InitialCluster: "a=" + peerA + ",b=" + peerB,
		ClusterState: etcdembed.ClusterExisting})
	return a, b
}

func TestHolderHandsEtcdLeadershipOver(t *testing.T) {
	a, b := twoMembers(t)
	leader := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := a.Client().Status(ctx, a.Endpoints()[0])
		if err != nil {
			return 0
		}
		return st.Leader
	}
	wait.For(t, 10*time.Second, "a leads etcd", func() bool { return leader() == a.MemberID() })

	// b is a live server: it announces its presence, as servers do.
	actx, stop := context.WithCancel(context.Background())
	announced := make(chan struct{})
	t.Cleanup(func() { stop(); <-announced })
	go func() {
		defer close(announced)
		membership.New(membership.Config{Client: b.Client(), Name: "b"}).Announce(actx, ready)
	}()

	addr := &fakeAddress{}
	runHolder(t, apivip.Config{Client: newClient(t, a.Endpoints()[0]), Identity: "a", Address: addr, Ready: ready,
		HandOffEtcdLeader: true})
	wait.For(t, 10*time.Second, "a holds the VIP", func() bool {
		on, _, _ := addr.state()
		return on
	})
	wait.For(t, 10*time.Second, "b leads etcd", func() bool { return leader() == b.MemberID() })
	if on, _, _ := addr.state(); !on {
		t.Fatal("a gave the VIP up while handing etcd's leadership over")
	}
}

func TestHandOffTargets(t *testing.T) {
	members := []*etcdserverpb.Member{
		{ID: 1, Name: "self"},
		{ID: 2, Name: "dead"},
		{ID: 3, Name: "learner", IsLearner: true},
		{ID: 4, Name: ""},
		{ID: 5, Name: "live"},
		{ID: 6, Name: "refused"},
		{ID: 7, Name: "live2"},
	}
	live := map[string]string{"self": "", "live": "", "refused": "", "learner": "", "live2": ""}
	refused := func(id uint64) bool { return id == 6 }
	var got []string
	for _, m := range apivip.HandOffTargets(members, 1, live, refused) {
		got = append(got, m.Name)
	}
	if want := []string{"live", "live2"}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v (never self, a dead server, a learner, an unstarted member or one that refused)", got, want)
	}
}
