package api

import "time"

// Role is what a user may do in a project.
type Role string

// Roles, from most to least powerful.
const (
	// RoleAdmin may do anything in the project, including granting roles.
	RoleAdmin Role = "admin"
	// RoleMember may create, change and delete the project's resources.
	RoleMember Role = "member"
	// RoleViewer may only read the project's resources.
	RoleViewer Role = "viewer"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleMember || r == RoleViewer }

// Project groups resources and the users who may act on them.
type Project struct {
	Kind     string        `json:"kind"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ProjectSpec   `json:"spec"`
	Status   ProjectStatus `json:"status"`
}

// ProjectSpec is what the user asks of a project.
type ProjectSpec struct {
	Description string `json:"description,omitempty"`
}

// ProjectStatus is what the server reports of a project.
type ProjectStatus struct{}

// User is a person or robot that holds API tokens.
type User struct {
	Kind     string     `json:"kind"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     UserSpec   `json:"spec"`
	Status   UserStatus `json:"status"`
}

// UserSpec holds a user's grants.
type UserSpec struct {
	// ClusterAdmin may do anything anywhere, including managing hosts,
	// flavors, projects and users.
	ClusterAdmin bool `json:"clusterAdmin,omitempty"`
	// Roles maps project name to the user's role in it.
	Roles map[string]Role `json:"roles,omitempty"`
}

// UserStatus is what the server keeps about a user's password. The hash
// is never returned by the API; PasswordSet says whether there is one.
type UserStatus struct {
	// PasswordSet is true when the user has a password and may sign in to
	// the console with it.
	PasswordSet bool `json:"passwordSet,omitempty"`
	// PasswordChangedAt is when the password was last set.
	PasswordChangedAt *time.Time `json:"passwordChangedAt,omitempty"`
	// PasswordHash is the argon2id hash of the password (PHC string
	// format); the server blanks it in every answer.
	PasswordHash string `json:"passwordHash,omitempty"`
}

// PasswordRequest sets a user's password: PUT /v1/users/{name}/password.
type PasswordRequest struct {
	// Password is the new password, at least 12 characters.
	Password string `json:"password"`
}

// SessionRequest signs in to the console: POST /v1/session with a user
// name and password, or with an API token alone.
type SessionRequest struct {
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Session describes the caller's console session: GET/POST /v1/session.
// Every change made with the session's cookie must carry CSRFToken in the
// X-CSRF-Token header.
type Session struct {
	User      string    `json:"user"`
	CSRFToken string    `json:"csrfToken"`
	Expires   time.Time `json:"expires"`
}

// Token is an API bearer token of a user or a host. The secret is shown
// once, on create; the server keeps only its hash.
//
// A token on the wire is "ouro_<name>_<secret>": the name finds the Token
// object, the secret is checked against SecretHash.
type Token struct {
	Kind     string      `json:"kind"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     TokenSpec   `json:"spec"`
	Status   TokenStatus `json:"status"`
}

// TokenSpec says whom a token authenticates.
type TokenSpec struct {
	// User is the user the token acts as; empty for host tokens.
	User string `json:"user,omitempty"`
	// Host is set for a host's agent credential.
	Host        string     `json:"host,omitempty"`
	Description string     `json:"description,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
}

// TokenStatus carries the hash of the secret (never returned by the API)
// and, only in the response to a create, the secret itself.
type TokenStatus struct {
	SecretHash string `json:"secretHash,omitempty"`
	// Secret is the full bearer token; present only in the create response.
	Secret string `json:"secret,omitempty"`
}

// JoinToken lets a new host register itself once or many times until it
// expires. Like Token, the secret is stored hashed and shown once.
type JoinToken struct {
	Kind     string        `json:"kind"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     JoinTokenSpec `json:"spec"`
	Status   TokenStatus   `json:"status"`
}

// JoinTokenSpec bounds a join token's use.
type JoinTokenSpec struct {
	ExpiresAt time.Time `json:"expiresAt"`
}

// Meta returns the project's metadata.
func (o *Project) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns ProjectKind.
func (o *Project) GetKind() *Kind { return ProjectKind }

// Meta returns the user's metadata.
func (o *User) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns UserKind.
func (o *User) GetKind() *Kind { return UserKind }

// Meta returns the token's metadata.
func (o *Token) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns TokenKind.
func (o *Token) GetKind() *Kind { return TokenKind }

// Meta returns the join token's metadata.
func (o *JoinToken) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns JoinTokenKind.
func (o *JoinToken) GetKind() *Kind { return JoinTokenKind }
