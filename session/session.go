// Package session keeps the console's sign-in sessions and limits how
// fast sign-ins may fail.
//
// A session id is 32 random bytes, sent to the browser in the HttpOnly
// cookie CookieName and nowhere else; the store keeps only its SHA-256
// (the object's name), under an etcd lease that outlives the session's
// expiry by at most a minute. A session acts as its user with exactly the
// user's current roles, read again on every request, and ends when it
// expires, on sign-out, when the user is deleted (or deleted and made
// again), when the user's password changes, or, for a session signed in
// with a token, when that token is deleted or expires.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// CookieName is the name of the session cookie.
const CookieName = "ouro_session"

// TTL is how long a session lasts from sign-in.
const TTL = 12 * time.Hour

// Kind is the store kind of sessions. It is not registered with package
// api, so it has no API routes, lists or watches.
var Kind = &api.Kind{Name: "Session", Plural: "sessions", New: func() api.Object { return &Record{} }}

// Record is a session as stored, named by the SHA-256 of its id.
type Record struct {
	Kind     string         `json:"kind"`
	Metadata api.ObjectMeta `json:"metadata"`
	Spec     Spec           `json:"spec"`
}

// Meta implements api.Object.
func (r *Record) Meta() *api.ObjectMeta { return &r.Metadata }

// GetKind implements api.Object.
func (r *Record) GetKind() *api.Kind { return Kind }

// Spec is who a session acts as and what must still hold for it to.
type Spec struct {
	// User is the user the session acts as; UserUID is its uid at sign-in.
	User    string `json:"user"`
	UserUID string `json:"userUID"`
	// PasswordStamp identifies the password signed in with (see Stamp);
	// empty for a session signed in with a token.
	PasswordStamp string `json:"passwordStamp,omitempty"`
	// Token is the name of the token signed in with, if any.
	Token string `json:"token,omitempty"`
	// CSRFToken must come with every change made with the session.
	CSRFToken string    `json:"csrfToken"`
	Expires   time.Time `json:"expires"`
}

// Stamp identifies a password hash without revealing it: a new password
// (with its new salt) has a new stamp.
func Stamp(passwordHash string) string {
	sum := sha256.Sum256([]byte("ouro password stamp\x00" + passwordHash))
	return hex.EncodeToString(sum[:16])
}

// Manager creates, resolves and ends sessions in a store.
type Manager struct {
	store store.Interface
	now   func() time.Time
}

// NewManager returns a Manager over s.
func NewManager(s store.Interface) *Manager {
	return &Manager{store: s, now: time.Now}
}

// Create stores a new session for spec (its CSRFToken and Expires are
// set here) and returns the id to put in the cookie and the record.
func (m *Manager) Create(ctx context.Context, spec Spec) (string, *Record, error) {
	id := randomString()
	spec.CSRFToken = randomString()
	spec.Expires = m.now().Add(TTL).UTC().Truncate(time.Second)
	rec := &Record{Kind: Kind.Name, Metadata: api.ObjectMeta{Name: hashID(id)}, Spec: spec}
	if _, err := m.store.Create(ctx, rec, store.CreateOptions{TTL: TTL}); err != nil {
		return "", nil, fmt.Errorf("store session: %w", err)
	}
	return id, rec, nil
}

// Authenticate resolves a session id from a cookie to the identity it acts
// as now, and its record. It returns auth.ErrUnauthenticated for an id
// that is malformed, unknown, expired or no longer valid.
func (m *Manager) Authenticate(ctx context.Context, id string) (*auth.Identity, *Record, error) {
	if !wellFormed(id) {
		return nil, nil, auth.ErrUnauthenticated
	}
	var rec Record
	if err := m.store.Get(ctx, Kind, "", hashID(id), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, auth.ErrUnauthenticated
		}
		return nil, nil, fmt.Errorf("read session: %w", err)
	}
	if !m.now().Before(rec.Spec.Expires) {
		return nil, nil, auth.ErrUnauthenticated
	}
	var u api.User
	if err := m.store.Get(ctx, api.UserKind, "", rec.Spec.User, &u); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, auth.ErrUnauthenticated
		}
		return nil, nil, fmt.Errorf("read user %s: %w", rec.Spec.User, err)
	}
	if u.Metadata.UID != rec.Spec.UserUID {
		return nil, nil, auth.ErrUnauthenticated
	}
	if rec.Spec.Token != "" {
		var tok api.Token
		err := m.store.Get(ctx, api.TokenKind, "", rec.Spec.Token, &tok)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, auth.ErrUnauthenticated
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read token %s: %w", rec.Spec.Token, err)
		}
		if tok.Spec.User != u.Metadata.Name || tok.Spec.ExpiresAt != nil && !m.now().Before(*tok.Spec.ExpiresAt) {
			return nil, nil, auth.ErrUnauthenticated
		}
	} else if u.Status.PasswordHash == "" || Stamp(u.Status.PasswordHash) != rec.Spec.PasswordStamp {
		return nil, nil, auth.ErrUnauthenticated
	}
	ident := &auth.Identity{User: u.Metadata.Name, ClusterAdmin: u.Spec.ClusterAdmin, Roles: u.Spec.Roles,
		Token: rec.Spec.Token}
	return ident, &rec, nil
}

// Delete ends the session with id; an unknown id is not an error.
func (m *Manager) Delete(ctx context.Context, id string) error {
	if !wellFormed(id) {
		return nil
	}
	err := m.store.Delete(ctx, Kind, "", hashID(id), "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

var b64 = base64.RawURLEncoding

// idBytes is the size of session ids and CSRF tokens: 256 bits.
const idBytes = 32

func randomString() string {
	b := make([]byte, idBytes)
	rand.Read(b) // never fails (Go 1.24+)
	return b64.EncodeToString(b)
}

func wellFormed(id string) bool {
	b, err := b64.DecodeString(id)
	return err == nil && len(b) == idBytes
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
