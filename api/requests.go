package api

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	// User to grant the role to and issue the token for; created if missing.
	User        string `json:"user"`
	Project     string `json:"project,omitempty"`
	Role        Role   `json:"role,omitempty"`
	Description string `json:"description,omitempty"`
	// TTL as a Go duration ("720h"); empty means no expiry.
	TTL string `json:"ttl,omitempty"`
}

// JoinTokenRequest is the body of POST /v1/jointokens.
type JoinTokenRequest struct {
	// TTL as a Go duration; default 24h.
	TTL string `json:"ttl,omitempty"`
}

// JoinRequest is the body of POST /v1/hosts/join, sent with a join token.
type JoinRequest struct {
	// Name of the host; a host that joins again under its name gets new
	// credentials (the old host token is revoked).
	Name string `json:"name"`
	// Address is the host's underlay address.
	Address string `json:"address"`
	// AgentEndpoint is the https URL the agent serves on.
	AgentEndpoint string `json:"agentEndpoint"`
	// CSR is a PEM certificate request for the agent's serving key.
	CSR          string            `json:"csr"`
	Capacity     Resources         `json:"capacity"`
	Architecture string            `json:"architecture"`
	Drivers      []string          `json:"drivers"`
	AgentVersion string            `json:"agentVersion,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Taints       []string          `json:"taints,omitempty"`
}

// JoinResponse returns the host's credentials.
type JoinResponse struct {
	Host Host `json:"host"`
	// Token is the host's bearer token for all later requests.
	Token string `json:"token"`
	// CACert is the cluster CA (PEM) that signs server and agent certificates.
	CACert string `json:"caCert"`
	// Certificate is the signed agent serving certificate (PEM).
	Certificate string `json:"certificate"`
}

// HeartbeatRequest is the body of POST /v1/hosts/{name}/heartbeat.
type HeartbeatRequest struct {
	// TTL the host asks for, as a Go duration; the server bounds it.
	TTL string `json:"ttl,omitempty"`
}

// Whoami is the answer of GET /v1/whoami.
type Whoami struct {
	User         string          `json:"user,omitempty"`
	Host         string          `json:"host,omitempty"`
	ClusterAdmin bool            `json:"clusterAdmin,omitempty"`
	Roles        map[string]Role `json:"roles,omitempty"`
}

// ExecRequest is the body of POST .../instances/{name}/exec.
type ExecRequest struct {
	Command []string `json:"command"`
	// Stdin is fed to the command ([]byte is base64 in JSON).
	Stdin []byte `json:"stdin,omitempty"`
	// TimeoutSeconds bounds the command (default 60, at most 3600).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// ExecResponse is the result of an exec. Output beyond 4 MiB per stream
// is cut and Truncated is set.
type ExecResponse struct {
	ExitCode  int    `json:"exitCode"`
	Stdout    []byte `json:"stdout"`
	Stderr    []byte `json:"stderr"`
	Truncated bool   `json:"truncated,omitempty"`
}

// ConsoleProtocol is the protocol POST .../instances/{name}/console
// upgrades to (headers "Connection: Upgrade" and "Upgrade: ouro-console"):
// after the 101 answer the connection carries the console's raw bytes both
// ways, as a serial line does.
const ConsoleProtocol = "ouro-console"

// PortForwardProtocol is the protocol POST
// .../instances/{name}/portforward?port=N upgrades to: after the 101
// answer the connection carries one TCP connection's bytes both ways,
// dialled by the instance's agent to the instance's first address and
// port N from inside the instance's network.
const PortForwardProtocol = "ouro-portforward"

// ExecTTYProtocol is the protocol POST .../instances/{name}/exec upgrades
// to when the command runs on a terminal (`ouro instance exec -t`): the
// request carries the command as query parameters (command=sh&command=-l)
// and the terminal's first size (rows, cols); after the 101 answer the
// connection carries frames of package ttyframe both ways: the
// terminal's bytes, resizes toward the command, then its exit code.
const ExecTTYProtocol = "ouro-exec-tty"
