package api

// KeyPair is an SSH public key registered in a project. Instances created
// with spec.keyName get it installed by cloud-init and served by the
// metadata service as public-keys/0/openssh-key. The private key never
// reaches the server: `ouro keypair create` makes the pair on the client
// and prints the private key once.
type KeyPair struct {
	Kind     string        `json:"kind"`
	Metadata ObjectMeta    `json:"metadata"`
	Spec     KeyPairSpec   `json:"spec"`
	Status   KeyPairStatus `json:"status"`
}

// KeyPairSpec holds the public key.
type KeyPairSpec struct {
	// PublicKey is one key in OpenSSH authorized_keys format
	// ("ssh-ed25519 AAAA... comment").
	PublicKey string `json:"publicKey"`
}

// KeyPairStatus is set by the server.
type KeyPairStatus struct {
	// Fingerprint is the key's SHA256 fingerprint as ssh-keygen -l shows it.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Type is the key algorithm, e.g. "ssh-ed25519".
	Type string `json:"type,omitempty"`
}

// Meta returns the key pair's metadata.
func (o *KeyPair) Meta() *ObjectMeta { return &o.Metadata }

// GetKind returns KeyPairKind.
func (o *KeyPair) GetKind() *Kind { return KeyPairKind }
