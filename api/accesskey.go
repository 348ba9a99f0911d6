package api

// AccessKey is an AWS-style access key of a user for one project: the
// EC2 Query API (package ec2) authenticates requests signed with it
// (SigV4) and acts with the user's role in that project. It is
// cluster-scoped; its name is the access key id in lower case (the id
// itself, "AKIA…", is in spec). The secret is kept only sealed
// (AES-GCM under a key derived from the cluster CA's private key), since
// the server needs it back to check signatures.
type AccessKey struct {
	Kind     string          `json:"kind"`
	Metadata ObjectMeta      `json:"metadata"`
	Spec     AccessKeySpec   `json:"spec"`
	Status   AccessKeyStatus `json:"status"`
}

// AccessKeySpec says whose key it is and for which project.
type AccessKeySpec struct {
	// AccessKeyID is the id clients send, 20 upper-case characters
	// starting "AKIA".
	AccessKeyID string `json:"accessKeyID"`
	// User owns the key; it acts with the user's role in Project.
	User string `json:"user"`
	// Project is the project the key acts in (the EC2 "account").
	Project string `json:"project"`
	// Description is free text.
	Description string `json:"description,omitempty"`
}

// AccessKeyStatus holds the sealed secret, written by the server.
type AccessKeyStatus struct {
	// SealedSecret is the secret access key sealed with the cluster's
	// key (base64 of nonce and AES-GCM ciphertext); never shown.
	SealedSecret string `json:"sealedSecret,omitempty"`
	// Secret is set only in the answer to the create, once.
	Secret string `json:"secret,omitempty"`
}

// AccessKeyRequest is the body of POST /v1/accesskeys.
type AccessKeyRequest struct {
	// Project the key acts in; default "default".
	Project     string `json:"project,omitempty"`
	Description string `json:"description,omitempty"`
}

// Meta returns the key's metadata.
func (o *AccessKey) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns AccessKeyKind.
func (o *AccessKey) GetKind() *Kind { return AccessKeyKind }
