package etcdembed_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
	"github.com/ouroboros-cloud/ouro/pki"
)

// peerTLS makes a CA and a peer certificate for loopback in dir.
func peerTLS(t *testing.T, dir string) *etcdembed.PeerTLS {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadOrCreateServerCert(dir, ca, nil); err != nil {
		t.Fatal(err)
	}
	return &etcdembed.PeerTLS{CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile),
		CAFile: filepath.Join(dir, pki.CACertFile)}
}

func httpsURL(t *testing.T) string {
	return "https://" + strings.TrimPrefix(etcdtest.FreeURL(t), "http://")
}

func start(t *testing.T, cfg etcdembed.Config) *etcdembed.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.Logger = etcdtest.Quiet()
	s, err := etcdembed.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestJoinExistingClusterOverPeerTLS(t *testing.T) {
	tlsA, tlsB := peerTLS(t, t.TempDir()), &etcdembed.PeerTLS{}
	// Both members' certificates come from one CA, as the servers' do.
	*tlsB = *tlsA
	ctx := context.Background()

	// a starts alone on http, as a single server did before joins.
	dirA := t.TempDir()
	a := start(t, etcdembed.Config{Name: "ouro", DataDir: dirA, ClientURL: etcdtest.FreeURL(t), PeerURL: etcdtest.FreeURL(t)})
	if _, err := a.Client().Put(ctx, "/test/before", "1"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// Restarted under its server's name with an https peer URL, it keeps
	// its data and records the new peer URL.
	peerA := httpsURL(t)
	a = start(t, etcdembed.Config{Name: "a", DataDir: dirA, ClientURL: etcdtest.FreeURL(t), PeerURL: peerA, PeerTLS: tlsA})
	members, err := a.Client().MemberList(ctx)
	if err != nil || len(members.Members) != 1 || members.Members[0].PeerURLs[0] != peerA {
		t.Fatalf("members after the restart: %v, %v; want one with %s", members, err, peerA)
	}

	peerB := httpsURL(t)
	add, err := a.Client().MemberAddAsLearner(ctx, []string{peerB})
	if err != nil {
		t.Fatalf("MemberAddAsLearner: %v", err)
	}
	// The cluster promotes b once it has caught up, as the servers do;
	// Start returns only then.
	promoted := make(chan error, 1)
	go func() {
		for {
			_, err := a.Client().MemberPromote(ctx, add.Member.ID)
			if err == nil || !strings.Contains(err.Error(), "in sync") {
				promoted <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	b := start(t, etcdembed.Config{Name: "b", DataDir: t.TempDir(), ClientURL: etcdtest.FreeURL(t), PeerURL: peerB,
		PeerTLS: tlsB, InitialCluster: "a=" + peerA + ",b=" + peerB, ClusterState: etcdembed.ClusterExisting})
	if err := <-promoted; err != nil {
		t.Fatalf("MemberPromote: %v", err)
	}

	resp, err := b.Client().Get(ctx, "/test/before")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
		t.Fatalf("b reads %v, %v; want the key a wrote before b joined", resp, err)
	}
	if _, err := b.Client().Put(ctx, "/test/from-b", "2"); err != nil {
		t.Fatal(err)
	}
	resp, err = a.Client().Get(ctx, "/test/from-b")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("a reads %v, %v; want b's key", resp, err)
	}
	members, err = b.Client().MemberList(ctx)
	if err != nil || len(members.Members) != 2 {
		t.Fatalf("members: %v, %v; want two", members, err)
	}
	for _, m := range members.Members {
		if m.Name != "a" && m.Name != "b" {
			t.Errorf("member %x is named %q", m.ID, m.Name)
		}
	}
}

func TestStartRefusesHTTPSPeerWithoutTLS(t *testing.T) {
	_, err := etcdembed.Start(context.Background(), etcdembed.Config{DataDir: t.TempDir(),
		ClientURL: etcdtest.FreeURL(t), PeerURL: httpsURL(t), Logger: etcdtest.Quiet()})
	if err == nil {
		t.Fatal("Start with an https peer URL and no certificate succeeded")
	}
}
