package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ouroboros-cloud/ouro/etcdembed"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
)

func TestOwnAndVIPURL(t *testing.T) {
	all := &net.TCPAddr{IP: net.IPv4zero, Port: 7443}
	one := &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 7443}
	for _, tc := range []struct {
		ln      net.Addr
		peerURL string
		want    string
	}{
		{all, "https://10.0.0.11:2380", "https://10.0.0.11:7443"},
		{all, "http://127.0.0.1:2380", "https://127.0.0.1:7443"},
		{one, "https://10.0.0.11:2380", "https://10.0.0.5:7443"},
	} {
		if got := ownURL(tc.ln, tc.peerURL); got != tc.want {
			t.Errorf("ownURL(%v, %s) = %s, want %s", tc.ln, tc.peerURL, got, tc.want)
		}
	}
	if got := vipURL("10.0.0.100/24", all); got != "https://10.0.0.100:7443" {
		t.Errorf("vipURL = %s", got)
	}
}

func TestCertHostsNameVIPAndPeer(t *testing.T) {
	hosts := certHosts(ServerConfig{APIVIP: "10.0.0.100/24", EtcdPeerURL: "https://10.0.0.11:2380", CertHosts: []string{"api.example"}})
	for _, want := range []string{"10.0.0.100", "10.0.0.11", "api.example"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("certificate hosts %v lack %s", hosts, want)
		}
	}
}

func TestEtcdMembership(t *testing.T) {
	log := etcdtest.Quiet()
	ctx := context.Background()
	dir := t.TempDir()
	// A new server starts a cluster of its own.
	if initial, state, err := etcdMembership(ctx, ServerConfig{DataDir: dir}, log); err != nil || initial != "" || state != etcdembed.ClusterNew {
		t.Fatalf("fresh: %q, %q, %v", initial, state, err)
	}
	// A malformed token is refused before anything is sent.
	if _, _, err := etcdMembership(ctx, ServerConfig{DataDir: dir, Join: "ourojoin_x"}, log); err == nil {
		t.Fatal("a malformed token was accepted")
	}
	// A join that got as far as join.json starts from it, without the token.
	if err := os.WriteFile(filepath.Join(dir, joinStateFile), []byte(`{"initialCluster":"a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	initial, state, err := etcdMembership(ctx, ServerConfig{DataDir: dir, Join: "used"}, log)
	if err != nil || state != etcdembed.ClusterExisting || initial != "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380" {
		t.Fatalf("after the join: %q, %q, %v", initial, state, err)
	}
	// Once etcd has data, neither matters.
	if err := os.MkdirAll(filepath.Join(dir, "etcd", "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if initial, state, err := etcdMembership(ctx, ServerConfig{DataDir: dir, Join: "used"}, log); err != nil || initial != "" || state != etcdembed.ClusterNew {
		t.Fatalf("with etcd data: %q, %q, %v", initial, state, err)
	}
}
