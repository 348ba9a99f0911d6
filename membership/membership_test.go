package membership

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/apiserver"
	"github.com/ouroboros-cloud/ouro/internal/apitest"
	"github.com/ouroboros-cloud/ouro/internal/wait"
	"github.com/ouroboros-cloud/ouro/pki"
)

// start runs an API server whose Servers is a membership.Servers over the
// test's etcd, named "ouro" as its member is, and returns both.
func start(t *testing.T) (*apitest.Server, *Servers) {
	t.Helper()
	var s *Servers
	srv := apitest.Start(t, apitest.Config{Servers: func(etcd *clientv3.Client, ca *pki.CA) apiserver.Servers {
		s = New(Config{Client: etcd, CA: ca, Name: "ouro", APIURL: "https://10.1.0.1:7443", Stacked: true,
			APIVIP: "10.1.0.100/24", VIPURL: "https://10.1.0.100:7443"})
		return s
	}})
	return srv, s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// newToken issues a join token as the admin and returns its parts.
func newToken(t *testing.T, srv *apitest.Server) Token {
	t.Helper()
	jt, err := srv.Client(t, srv.Admin).CreateServerJoinToken(ctx(t), api.ServerJoinTokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(jt.Token)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenCarriesVIPURLAndPin(t *testing.T) {
	srv, _ := start(t)
	tok := newToken(t, srv)
	if tok.APIURL != "https://10.1.0.100:7443" {
		t.Errorf("token URL %q, want the VIP's", tok.APIURL)
	}
	if tok.CAPin != pki.Pin(srv.CA.Certificate()) {
		t.Errorf("token pin %q, want the CA's", tok.CAPin)
	}
	if _, err := ParseToken("ourojoin_bogus"); err == nil {
		t.Error("ParseToken accepted garbage")
	}
}

func TestJoinRefusals(t *testing.T) {
	srv, s := start(t)
	good := api.ServerJoinRequest{Name: "two", PeerURL: "https://10.1.0.2:2380"}
	used := newToken(t, srv)
	vt, err := s.verify(ctx(t), used.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.consume(ctx(t), vt); err != nil {
		t.Fatal(err)
	}
	expired := newToken(t, srv)
	s.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
	_, err = s.Join(ctx(t), expired.Secret, good)
	s.now = time.Now
	if api.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("expired token: %v, want 401", err)
	}
	_, otherSecret, _ := strings.Cut(newToken(t, srv).Secret[len("ouro_"):], "_")

	for _, tc := range []struct {
		name   string
		secret string
		req    api.ServerJoinRequest
		status int
		want   string
	}{
		{"garbage token", "ouro_nonsense", good, http.StatusUnauthorized, "not valid"},
		{"used token", used.Secret, good, http.StatusUnauthorized, "was used"},
		{"wrong secret", used.Secret[:len("ouro_")+12] + "_" + otherSecret, good, http.StatusUnauthorized, "not valid"},
		{"loopback peer", newToken(t, srv).Secret, api.ServerJoinRequest{Name: "two", PeerURL: "https://127.0.0.1:2380"},
			http.StatusBadRequest, "peerURL"},
		{"http peer", newToken(t, srv).Secret, api.ServerJoinRequest{Name: "two", PeerURL: "http://10.1.0.2:2380"},
			http.StatusBadRequest, "https"},
		{"bad name", newToken(t, srv).Secret, api.ServerJoinRequest{Name: "Two!", PeerURL: good.PeerURL},
			http.StatusBadRequest, "name"},
		// The test's etcd member peers over http on loopback.
		{"cluster peers on http", newToken(t, srv).Secret, good, http.StatusConflict, "--etcd-peer-url https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Join(ctx(t), tc.secret, tc.req)
			if api.StatusOf(err) != tc.status || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Join = %v, want %d mentioning %q", err, tc.status, tc.want)
			}
		})
	}
	// Refused joins added no member.
	members, err := srv.Etcd.MemberList(ctx(t))
	if err != nil || len(members.Members) != 1 {
		t.Fatalf("members after refused joins: %v, %v", members, err)
	}
}

func TestJoinOverHTTPRefusesBadToken(t *testing.T) {
	srv, _ := start(t)
	c := srv.Client(t, "ouro_aaaaaaaaaaaa_bbbb")
	_, err := c.Do(ctx(t), http.MethodPost, "/v1/servers/join", nil, api.ServerJoinRequest{Name: "two", PeerURL: "https://10.1.0.2:2380"}, nil)
	if api.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("join with a bad token: %v, want 401", err)
	}
}

func TestOnlyAdminsManageServers(t *testing.T) {
	srv, _ := start(t)
	srv.Project(t, "p")
	member := srv.Client(t, srv.Token(t, "alice", "p", api.RoleAdmin))
	if _, err := member.CreateServerJoinToken(ctx(t), api.ServerJoinTokenRequest{}); api.StatusOf(err) != http.StatusForbidden {
		t.Errorf("join token by a project admin: %v, want 403", err)
	}
	if _, err := member.ListServers(ctx(t)); api.StatusOf(err) != http.StatusForbidden {
		t.Errorf("list by a project admin: %v, want 403", err)
	}
	if err := member.RemoveServer(ctx(t), "ouro"); api.StatusOf(err) != http.StatusForbidden {
		t.Errorf("remove by a project admin: %v, want 403", err)
	}
	// Everyone may ask where the API is.
	info, err := member.ClusterInfo(ctx(t))
	if err != nil || info.APIURL != "https://10.1.0.100:7443" {
		t.Errorf("cluster info: %+v, %v", info, err)
	}
}

func TestListAndRemove(t *testing.T) {
	srv, s := start(t)
	annCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Announce(annCtx, func(context.Context) error { return nil }) }()
	t.Cleanup(func() { cancel(); <-done })

	admin := srv.Client(t, srv.Admin)
	wait.ForDetail(t, 10*time.Second, "server ouro ready in the list", func() (bool, string) {
		l, err := admin.ListServers(ctx(t))
		if err != nil {
			return false, err.Error()
		}
		return len(l.Items) == 1 && l.Items[0].Ready && l.Items[0].APIURL == "https://10.1.0.1:7443", fmt.Sprintf("%+v", l.Items)
	})
	for _, tc := range []struct {
		name   string
		status int
		want   string
	}{
		{"nobody", http.StatusNotFound, "not found"},
		{"ouro", http.StatusConflict, "last etcd member"},
	} {
		name := tc.name
		err := admin.RemoveServer(ctx(t), name)
		if api.StatusOf(err) != tc.status || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("remove %q: %v, want %d mentioning %q", name, err, tc.status, tc.want)
		}
	}
}
