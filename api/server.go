package api

import "time"

// ClusterInfo is the answer of GET /v1/cluster: what any authenticated
// caller (users and agents) may know about the control plane.
type ClusterInfo struct {
	// APIVIP is the servers' virtual API address (ADDR/PREFIX), if any.
	APIVIP string `json:"apiVIP,omitempty"`
	// APIURL is the URL clients and agents should use: the API VIP's
	// when the servers hold one, else the answering server's own.
	APIURL string `json:"apiURL"`
}

// Server is one server of the control plane (one etcd member beside one
// API server), as GET /v1/servers lists it.
type Server struct {
	// Name is the server's name, which is also its etcd member's.
	Name string `json:"name"`
	// MemberID is the etcd member id in hex.
	MemberID string `json:"memberID"`
	// PeerURLs are the etcd member's peer URLs.
	PeerURLs []string `json:"peerURLs,omitempty"`
	// APIURL is the server's own API URL, as it announced it.
	APIURL string `json:"apiURL,omitempty"`
	// Ready says the server announces itself: its API answers and it sees
	// an etcd quorum.
	Ready bool `json:"ready"`
	// Started is false for a member added to etcd that has not started.
	Started bool `json:"started"`
	// Learner says the member is still catching up: it does not vote
	// yet and its server waits to be promoted.
	Learner bool `json:"learner,omitempty"`
	// HoldsAPIVIP says the server holds the API VIP now.
	HoldsAPIVIP bool `json:"holdsAPIVIP,omitempty"`
	// ControllerLeader says the server leads the controllers now.
	ControllerLeader bool `json:"controllerLeader,omitempty"`
}

// ServerList is the answer of GET /v1/servers.
type ServerList struct {
	Items []Server `json:"items"`
}

// ServerJoinTokenRequest is the body of POST /v1/servers/jointokens.
type ServerJoinTokenRequest struct {
	// TTL as a Go duration; default 1h.
	TTL string `json:"ttl,omitempty"`
}

// ServerJoinToken is a new server join token. The token is shown once;
// the cluster keeps only its hash, and it can be used once.
type ServerJoinToken struct {
	// Token carries the API URL, the pin of the cluster CA and the
	// secret: `ouro server --join <token>`.
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	// APIURL is the URL in the token.
	APIURL string `json:"apiURL"`
}

// ServerJoinRequest is the body of POST /v1/servers/join, sent with the
// secret of a server join token as bearer.
type ServerJoinRequest struct {
	// Name of the new server and of its etcd member.
	Name string `json:"name"`
	// PeerURL is the https URL its etcd member listens on for peers.
	PeerURL string `json:"peerURL"`
}

// ServerJoinResponse is what a joining server needs to become one: the
// cluster CA with its key, and the etcd members including itself.
type ServerJoinResponse struct {
	CACert string `json:"caCert"`
	CAKey  string `json:"caKey"`
	// InitialCluster is "name=peerURL,..." of every member, the new one
	// included.
	InitialCluster string `json:"initialCluster"`
	// APIVIP is the cluster's API VIP, if it has one.
	APIVIP string `json:"apiVIP,omitempty"`
}
