package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// ErrUnauthenticated means the bearer token is missing, malformed, unknown,
// wrong or expired. Other errors from Authenticate mean the store failed.
var ErrUnauthenticated = errors.New("unauthenticated")

// Identity is an authenticated caller: a user (with its grants) or a host.
type Identity struct {
	// User is the user's name; empty for hosts.
	User string
	// Host is the host's name; empty for users.
	Host string
	// ClusterAdmin may do anything.
	ClusterAdmin bool
	// Roles maps project to the user's role there.
	Roles map[string]api.Role
	// Token is the name of the token the caller presented, or signed in
	// to the console with.
	Token string
	// CSRFToken is set for a console session's identity: the token every
	// change made with the session must carry. Empty for bearer tokens.
	CSRFToken string
}

// String names the identity for logs: "user:alice" or "host:h1".
func (id *Identity) String() string {
	if id.Host != "" {
		return "host:" + id.Host
	}
	return "user:" + id.User
}

// SystemPrefix starts the user names of the server's own controllers.
// It is not valid in a user name, so no user can hold such an identity.
const SystemPrefix = "system:"

// IsSystem reports whether id is one of the server's own controllers,
// which alone may set finalizers and write some statuses.
func (id *Identity) IsSystem() bool {
	return id != nil && id.Host == "" && strings.HasPrefix(id.User, SystemPrefix)
}

// Whoami returns the identity as the API shows it.
func (id *Identity) Whoami() api.Whoami {
	return api.Whoami{User: id.User, Host: id.Host, ClusterAdmin: id.ClusterAdmin, Roles: id.Roles}
}

// DefaultCacheTTL bounds how long a resolved token is trusted without
// reading the store again, and so how long a revoked token keeps working.
const DefaultCacheTTL = 2 * time.Second

// Authenticator resolves bearer tokens through the store.
type Authenticator struct {
	store store.Interface
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	cache map[string]cached // by token name
}

type cached struct {
	hash    string
	id      *Identity
	expires time.Time
}

// NewAuthenticator returns an Authenticator reading tokens and users from
// s, caching positive answers for DefaultCacheTTL.
func NewAuthenticator(s store.Interface) *Authenticator {
	return &Authenticator{store: s, ttl: DefaultCacheTTL, now: time.Now, cache: map[string]cached{}}
}

// SetCacheTTL changes how long positive lookups are cached (0 disables the
// cache).
func (a *Authenticator) SetCacheTTL(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ttl = d
	clear(a.cache)
}

// Forget drops a token from the cache, so its revocation on this server
// takes effect at once.
func (a *Authenticator) Forget(tokenName string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.cache, tokenName)
}

// Authenticate resolves a wire token (without "Bearer ") to an Identity.
// Join tokens are not accepted here.
func (a *Authenticator) Authenticate(ctx context.Context, wire string) (*Identity, error) {
	name, secret, err := Parse(wire)
	if err != nil {
		return nil, ErrUnauthenticated
	}
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[name]
	if ok && now.After(c.expires) {
		delete(a.cache, name)
		ok = false
	}
	a.mu.Unlock()
	if ok {
		if !Verify(secret, c.hash) {
			return nil, ErrUnauthenticated
		}
		return c.id, nil
	}

	var tok api.Token
	if err := a.store.Get(ctx, api.TokenKind, "", name, &tok); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrUnauthenticated
		}
		return nil, fmt.Errorf("read token %s: %w", name, err)
	}
	if tok.Status.SecretHash == "" || !Verify(secret, tok.Status.SecretHash) {
		return nil, ErrUnauthenticated
	}
	if tok.Spec.ExpiresAt != nil && !now.Before(*tok.Spec.ExpiresAt) {
		return nil, ErrUnauthenticated
	}
	id := &Identity{Token: name}
	switch {
	case tok.Spec.Host != "":
		id.Host = tok.Spec.Host
	case tok.Spec.User != "":
		var u api.User
		if err := a.store.Get(ctx, api.UserKind, "", tok.Spec.User, &u); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, ErrUnauthenticated
			}
			return nil, fmt.Errorf("read user %s: %w", tok.Spec.User, err)
		}
		id.User = u.Metadata.Name
		id.ClusterAdmin = u.Spec.ClusterAdmin
		id.Roles = u.Spec.Roles
	default:
		return nil, ErrUnauthenticated
	}
	expires := now.Add(a.ttl)
	if tok.Spec.ExpiresAt != nil && tok.Spec.ExpiresAt.Before(expires) {
		expires = *tok.Spec.ExpiresAt
	}
	a.mu.Lock()
	if a.ttl > 0 {
		a.cache[name] = cached{hash: tok.Status.SecretHash, id: id, expires: expires}
	}
	a.mu.Unlock()
	return id, nil
}

// AuthenticateJoin checks a join token and returns it. Join tokens are
// never cached: they are used once per host join.
func (a *Authenticator) AuthenticateJoin(ctx context.Context, wire string) (*api.JoinToken, error) {
	name, secret, err := Parse(wire)
	if err != nil {
		return nil, ErrUnauthenticated
	}
	var jt api.JoinToken
	if err := a.store.Get(ctx, api.JoinTokenKind, "", name, &jt); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrUnauthenticated
		}
		return nil, fmt.Errorf("read join token %s: %w", name, err)
	}
	if jt.Status.SecretHash == "" || !Verify(secret, jt.Status.SecretHash) {
		return nil, ErrUnauthenticated
	}
	if !a.now().Before(jt.Spec.ExpiresAt) {
		return nil, ErrUnauthenticated
	}
	return &jt, nil
}
