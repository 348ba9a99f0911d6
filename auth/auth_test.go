package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

func TestTokenWireFormat(t *testing.T) {
	name, secret, wire := NewSecret()
	if len(name) != 12 || strings.ToLower(name) != name {
		t.Errorf("name %q: want 12 lower-case characters", name)
	}
	if wire != "ouro_"+name+"_"+secret {
		t.Errorf("wire = %q", wire)
	}
	n, s, err := Parse(wire)
	if err != nil || n != name || s != secret {
		t.Fatalf("Parse(%q) = %q, %q, %v", wire, n, s, err)
	}
	if !Verify(secret, Hash(secret)) {
		t.Error("Verify rejects the right secret")
	}
	_, other, _ := NewSecret()
	if Verify(other, Hash(secret)) {
		t.Error("Verify accepts another secret")
	}
	if _, _, w2 := NewSecret(); w2 == wire {
		t.Error("two tokens are equal")
	}
}

func TestParseRejects(t *testing.T) {
	_, secret, _ := NewSecret()
	for _, wire := range []string{
		"",
		"Bearer x",
		"ouro_",
		"ouro_abcdefghijkl",
		"ouro_abcdefghijkl_",
		"ouro_ABCDEFGHIJKL_" + secret,
		"ouro_abcdefghijk_" + secret,
		"ouro_abcdefghijk1_" + secret,
		"ouro_abcdefghijkl_" + secret[:20],
		"xoro_abcdefghijkl_" + secret,
		"ouro_abcdefghijkl_" + secret + "_x",
	} {
		if _, _, err := Parse(wire); err == nil {
			t.Errorf("Parse(%q) accepted it", wire)
		}
	}
}

// getStore is a store that answers Get from a map; other methods are not
// used by the Authenticator.
type getStore struct {
	store.Interface
	mu   sync.Mutex
	objs map[string]api.Object
	gets int
}

func (s *getStore) put(o api.Object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[o.GetKind().Plural+"/"+o.Meta().Name] = o
}

func (s *getStore) del(k *api.Kind, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, k.Plural+"/"+name)
}

func (s *getStore) Get(_ context.Context, k *api.Kind, _, name string, out api.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	o, ok := s.objs[k.Plural+"/"+name]
	if !ok {
		return store.ErrNotFound
	}
	switch dst := out.(type) {
	case *api.Token:
		*dst = *o.(*api.Token)
	case *api.User:
		*dst = *o.(*api.User)
	case *api.JoinToken:
		*dst = *o.(*api.JoinToken)
	default:
		return errors.New("unexpected kind")
	}
	return nil
}

func TestAuthenticator(t *testing.T) {
	st := &getStore{objs: map[string]api.Object{}}
	now := time.Now()
	past := now.Add(-time.Minute)
	mk := func(spec api.TokenSpec) string {
		name, secret, wire := NewSecret()
		st.put(&api.Token{Metadata: api.ObjectMeta{Name: name}, Spec: spec, Status: api.TokenStatus{SecretHash: Hash(secret)}})
		return wire
	}
	st.put(&api.User{Metadata: api.ObjectMeta{Name: "alice"}, Spec: api.UserSpec{Roles: map[string]api.Role{"a": api.RoleMember}}})
	alice := mk(api.TokenSpec{User: "alice"})
	host := mk(api.TokenSpec{Host: "h1"})
	expired := mk(api.TokenSpec{User: "alice", ExpiresAt: &past})
	orphan := mk(api.TokenSpec{User: "ghost"})
	aliceName, _, _ := Parse(alice)
	wrongSecret := "ouro_" + aliceName + "_" + strings.Split(host, "_")[2]

	a := NewAuthenticator(st)
	tests := []struct {
		name, wire string
		wantErr    bool
		check      func(*Identity) bool
	}{
		{"user", alice, false, func(id *Identity) bool { return id.User == "alice" && id.Roles["a"] == api.RoleMember }},
		{"host", host, false, func(id *Identity) bool { return id.Host == "h1" && id.User == "" }},
		{"expired", expired, true, nil},
		{"user gone", orphan, true, nil},
		{"wrong secret", wrongSecret, true, nil},
		{"unknown", func() string { _, _, w := NewSecret(); return w }(), true, nil},
		{"garbage", "hello", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.Authenticate(context.Background(), tt.wire)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("err = %v, want ErrUnauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(id) {
				t.Errorf("identity %+v", id)
			}
		})
	}

	// The cache answers the next lookup, and still checks the secret.
	before := st.gets
	if _, err := a.Authenticate(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	if st.gets != before {
		t.Error("cached token read from the store again")
	}
	if _, err := a.Authenticate(context.Background(), wrongSecret); !errors.Is(err, ErrUnauthenticated) {
		t.Error("cached token accepted a wrong secret")
	}
	// Revocation takes effect once the cache entry is gone.
	st.del(api.TokenKind, aliceName)
	a.Forget(aliceName)
	if _, err := a.Authenticate(context.Background(), alice); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked token: err = %v", err)
	}
	// Cache expiry.
	hostName, _, _ := Parse(host)
	a.now = func() time.Time { return now.Add(time.Hour) }
	st.del(api.TokenKind, hostName)
	if _, err := a.Authenticate(context.Background(), host); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked token after cache expiry: err = %v", err)
	}
}

func TestAuthenticateJoin(t *testing.T) {
	st := &getStore{objs: map[string]api.Object{}}
	mk := func(exp time.Time) string {
		name, secret, wire := NewSecret()
		st.put(&api.JoinToken{Metadata: api.ObjectMeta{Name: name}, Spec: api.JoinTokenSpec{ExpiresAt: exp}, Status: api.TokenStatus{SecretHash: Hash(secret)}})
		return wire
	}
	good, old := mk(time.Now().Add(time.Hour)), mk(time.Now().Add(-time.Second))
	a := NewAuthenticator(st)
	if _, err := a.AuthenticateJoin(context.Background(), good); err != nil {
		t.Errorf("good join token: %v", err)
	}
	if _, err := a.AuthenticateJoin(context.Background(), old); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired join token: %v", err)
	}
	// A join token is not an API token.
	if _, err := a.Authenticate(context.Background(), good); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("join token accepted as API token: %v", err)
	}
}
