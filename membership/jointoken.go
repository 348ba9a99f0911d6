package membership

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/pki"
)

// Join token lifetimes.
const (
	DefaultJoinTokenTTL = time.Hour
	MaxJoinTokenTTL     = 24 * time.Hour
)

// tokenPrefix starts a server join token on the command line.
const tokenPrefix = "ourojoin_"

// Token is what a server join token carries.
type Token struct {
	// APIURL is where to join.
	APIURL string `json:"url"`
	// CAPin is pki.Pin of the cluster CA.
	CAPin string `json:"pin"`
	// Secret is the bearer of the join request, "ouro_<name>_<secret>".
	Secret string `json:"secret"`
}

// String encodes t for the command line.
func (t Token) String() string {
	b, _ := json.Marshal(t)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes a token made by String.
func ParseToken(s string) (Token, error) {
	var t Token
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if !ok || err != nil || json.Unmarshal(b, &t) != nil || t.APIURL == "" || !strings.HasPrefix(t.CAPin, "sha256:") {
		return Token{}, errors.New("not a server join token: get one with `ouro server join-token` on a running server")
	}
	if _, _, err := auth.Parse(t.Secret); err != nil {
		return Token{}, fmt.Errorf("server join token: %w", err)
	}
	return t, nil
}

// storedToken is the value of /ouro/serverjoin/<name>.
type storedToken struct {
	Hash      string    `json:"hash"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// IssueJoinToken makes a single-use server join token valid for ttl
// (DefaultJoinTokenTTL when zero). Only its hash is kept, under a lease
// that ends with it.
func (s *Servers) IssueJoinToken(ctx context.Context, ttl time.Duration) (*api.ServerJoinToken, error) {
	if ttl == 0 {
		ttl = DefaultJoinTokenTTL
	}
	if ttl < time.Minute || ttl > MaxJoinTokenTTL {
		return nil, api.Invalid("ttl", "use a duration from 1m to 24h", "ttl %v is out of range", ttl)
	}
	if !s.cfg.Stacked {
		return nil, noJoin()
	}
	if s.cfg.CA == nil {
		return nil, unavailable("issue a server join token", errors.New("the server has no CA"))
	}
	name, secret, wire := auth.NewSecret()
	exp := s.now().Add(ttl).UTC()
	val, _ := json.Marshal(storedToken{Hash: auth.Hash(secret), ExpiresAt: exp})
	lease, err := s.cfg.Client.Grant(ctx, int64(ttl/time.Second)+1)
	if err != nil {
		return nil, unavailable("store the join token", err)
	}
	if _, err := s.cfg.Client.Put(ctx, joinPrefix+name, string(val), clientv3.WithLease(lease.ID)); err != nil {
		return nil, unavailable("store the join token", err)
	}
	u := s.cfg.VIPURL
	if u == "" {
		u = s.cfg.APIURL
	}
	tok := Token{APIURL: u, CAPin: pki.Pin(s.cfg.CA.Certificate()), Secret: wire}
	return &api.ServerJoinToken{Token: tok.String(), ExpiresAt: exp, APIURL: u}, nil
}

// errBadToken answers a join with a token that does not serve.
var errBadToken = &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
	Message: "the server join token is not valid, has expired or was used",
	Hint:    "get a new one with `ouro server join-token`"}

// verifiedToken is a stored token whose secret a join presented.
type verifiedToken struct {
	key   string
	rev   int64
	value []byte
	exp   time.Time
}

// verify checks the secret of a join token and returns the stored token,
// for consume.
func (s *Servers) verify(ctx context.Context, wire string) (*verifiedToken, error) {
	name, secret, err := auth.Parse(wire)
	if err != nil {
		return nil, errBadToken
	}
	key := joinPrefix + name
	resp, err := s.cfg.Client.Get(ctx, key)
	if err != nil {
		return nil, unavailable("read the join token", err)
	}
	if len(resp.Kvs) != 1 {
		return nil, errBadToken
	}
	var st storedToken
	if json.Unmarshal(resp.Kvs[0].Value, &st) != nil || !auth.Verify(secret, st.Hash) || !s.now().Before(st.ExpiresAt) {
		return nil, errBadToken
	}
	return &verifiedToken{key: key, rev: resp.Kvs[0].ModRevision, value: resp.Kvs[0].Value, exp: st.ExpiresAt}, nil
}

// restore puts back a consumed token whose join failed for a reason of
// the cluster's, so that the joining server can try again.
func (s *Servers) restore(ctx context.Context, tok *verifiedToken) {
	left := time.Until(tok.exp)
	if left < time.Second {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	lease, err := s.cfg.Client.Grant(ctx, int64(left/time.Second)+1)
	if err == nil {
		_, err = s.cfg.Client.Put(ctx, tok.key, string(tok.value), clientv3.WithLease(lease.ID))
	}
	if err != nil {
		s.log.Warn("put back a server join token after a failed join", "err", err)
	}
}

// consume deletes a verified token, so that it serves once; a token used
// by a concurrent join since it was verified is refused.
func (s *Servers) consume(ctx context.Context, tok *verifiedToken) error {
	key, rev := tok.key, tok.rev
	txn, err := s.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return unavailable("use the join token", err)
	}
	if !txn.Succeeded {
		return errBadToken
	}
	return nil
}

// Join admits a new server with the join token secret wire: it uses the
// token up, adds the server's etcd member and answers the CA and the
// members the new server starts its own with.
func (s *Servers) Join(ctx context.Context, wire string, req api.ServerJoinRequest) (*api.ServerJoinResponse, error) {
	if !s.cfg.Stacked {
		return nil, noJoin()
	}
	tok, err := s.verify(ctx, wire)
	if err != nil {
		return nil, err
	}
	if err := validateJoin(req); err != nil {
		return nil, err
	}
	members, err := s.cfg.Client.MemberList(ctx)
	if err != nil {
		return nil, unavailable("list etcd members", err)
	}
	for _, m := range members.Members {
		switch {
		case m.Name == req.Name:
			return nil, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists, Field: "name",
				Message: fmt.Sprintf("a server named %q is already a member", req.Name),
				Hint:    "pick another name, or `ouro server remove` the old one first"}
		case m.Name == "":
			return nil, refused("etcd member %x was added but has not started; start it or remove it before adding another", m.ID)
		case m.IsLearner:
			return nil, refused("server %q is still catching up (an etcd learner); add the next server once it is ready", m.Name)
		case slices.Contains(m.PeerURLs, req.PeerURL):
			return nil, api.Invalid("peerURL", "give the new server's own address", "member %q already uses peer URL %s", m.Name, req.PeerURL)
		}
		for _, p := range m.PeerURLs {
			if err := reachablePeer(p); err != nil {
				return nil, refused("server %q's etcd member uses peer URL %s, which other servers cannot use (%v); "+
					"restart it with --etcd-peer-url https://<its address>:2380 before servers join", m.Name, p, err)
			}
		}
	}
	// Used up before the member is added: a second join with the same
	// token adds none.
	if err := s.consume(ctx, tok); err != nil {
		return nil, err
	}
	add, err := s.memberAdd(ctx, req.PeerURL)
	if err != nil {
		s.restore(ctx, tok)
		return nil, unavailable("add etcd member "+req.Name, err)
	}
	var initial []string
	for _, m := range add.Members {
		name := m.Name
		if m.ID == add.Member.ID {
			name = req.Name
		}
		for _, p := range m.PeerURLs {
			initial = append(initial, name+"="+p)
		}
	}
	caKey, err := s.cfg.CA.KeyPEM()
	if err != nil {
		return nil, err
	}
	s.log.Info("server joining", "server", req.Name, "peerURL", req.PeerURL, "member", fmt.Sprintf("%x", add.Member.ID))
	return &api.ServerJoinResponse{CACert: string(s.cfg.CA.CertPEM()), CAKey: string(caKey),
		InitialCluster: strings.Join(initial, ","), APIVIP: s.cfg.APIVIP}, nil
}

// memberAddPatience bounds how long a join waits for the cluster to take
// a member: etcd refuses while it is unhealthy or another learner has not
// been promoted yet.
const memberAddPatience = 30 * time.Second

// memberAdd adds a learner with peerURL, retrying while etcd says the
// cluster is not ready for one. A learner does not count towards the
// quorum: the cluster stays available while the new member starts and
// catches up; the servers then promote it (promoteLearners).
func (s *Servers) memberAdd(ctx context.Context, peerURL string) (*clientv3.MemberAddResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, memberAddPatience)
	defer cancel()
	for {
		add, err := s.cfg.Client.MemberAddAsLearner(ctx, []string{peerURL})
		if desc := rpctypes.ErrorDesc(err); err == nil ||
			desc != rpctypes.ErrUnhealthy.Error() && desc != rpctypes.ErrTooManyLearners.Error() {
			return add, err
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

func noJoin() error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
		Message: "this server runs on an external etcd, so servers join by --etcd-endpoints, not with a join token"}
}

func validateJoin(req api.ServerJoinRequest) error {
	if e := api.ValidateName("name", req.Name); e != nil {
		return e
	}
	if err := reachablePeer(req.PeerURL); err != nil {
		return api.Invalid("peerURL", "use https://<the new server's address>:2380", "peer URL %q: %v", truncate(req.PeerURL, 80), err)
	}
	return nil
}

// reachablePeer checks that a peer URL is https on an address other
// machines can reach.
func reachablePeer(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Port() == "" || u.Path != "" && u.Path != "/" || u.User != nil {
		return errors.New("want https://ADDRESS:PORT")
	}
	if u.Scheme != "https" {
		return errors.New("peer traffic must be https")
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return errors.New("want an IP address")
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return errors.New("a loopback or unspecified address")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// JoinCluster sends a join request to the server named in tok, trusting
// it only if it presents a certificate signed by the CA tok pins, and
// returns the answer.
func JoinCluster(ctx context.Context, tok Token, req api.ServerJoinRequest) (*api.ServerJoinResponse, error) {
	u, err := url.Parse(tok.APIURL)
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("join: API URL %q is not https", tok.APIURL)
	}
	host := u.Hostname()
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is checked below, against the pinned CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, tok.CAPin, host)
		},
	}
	hc := &http.Client{Timeout: memberAddPatience + 30*time.Second, Transport: &http.Transport{TLSClientConfig: tc,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	c, err := client.New(client.Config{Server: tok.APIURL, Token: tok.Secret, HTTPClient: hc, UserAgent: "ouro-server-join"})
	if err != nil {
		return nil, err
	}
	// A join is sent once: the token is used up by the first that
	// arrives. Only a connection that could not be made (the VIP moving)
	// is tried again.
	for {
		var resp api.ServerJoinResponse
		_, err := c.Do(ctx, http.MethodPost, "/v1/servers/join", nil, req, &resp)
		if err == nil {
			return &resp, nil
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" || ctx.Err() != nil {
			return nil, fmt.Errorf("join through %s: %w", tok.APIURL, err)
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("join through %s: %w", tok.APIURL, err)
		case <-t.C:
		}
	}
}

// verifyPinned finds the CA with pin among the certificates the server
// sent and verifies the server's certificate against it for host.
func verifyPinned(certs []*x509.Certificate, pin, host string) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	for _, c := range certs[1:] {
		if !c.IsCA || pki.Pin(c) != pin {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(c)
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		return nil
	}
	return fmt.Errorf("the server's CA does not match the token's pin %s", pin)
}
