package admission

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/store"
)

// Key pair and user-data bounds.
const (
	// maxPublicKey bounds spec.publicKey; an RSA 16384-bit key is ~2.8 KiB.
	maxPublicKey = 8 << 10
	// maxKeyComment bounds the comment kept after the key.
	maxKeyComment = 256
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
	// MaxUserData bounds spec.userData of instances (as EC2's 16 KiB).
	MaxUserData = 16 << 10
)

// keyTypes are the accepted key algorithms.
var keyTypes = []string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA,
}

const publicKeyHint = "give one OpenSSH public key line such as \"ssh-ed25519 AAAA... comment\" " +
	"(ed25519, ecdsa or rsa of at least 2048 bits), as in ~/.ssh/id_ed25519.pub"

// PublicKey is a validated public key.
type PublicKey struct {
	// Line is the key in canonical authorized_keys form with its comment.
	Line string
	// Type is the key algorithm, such as ssh-ed25519.
	Type string
	// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l
	// shows it.
	Fingerprint string
}

// ParsePublicKey validates one authorized_keys line without options and
// returns it normalised: single spaces, canonical base64, the comment
// kept. Its errors name field.
func ParsePublicKey(field, s string) (*PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, api.Invalid(field, publicKeyHint, "public key is required")
	}
	if len(s) > maxPublicKey {
		return nil, api.Invalid(field, publicKeyHint, "public key is %d bytes, more than %d", len(s), maxPublicKey)
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, api.Invalid(field, publicKeyHint, "give one key on one line")
	}
	key, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, api.Invalid(field, publicKeyHint, "not an OpenSSH public key: %v", err)
	}
	if len(options) > 0 {
		return nil, api.Invalid(field, "remove the authorized_keys options before the key type", "options %q are not allowed", strings.Join(options, ","))
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, api.Invalid(field, publicKeyHint, "give one key on one line")
	}
	typ := key.Type()
	if !slices.Contains(keyTypes, typ) {
		return nil, api.Invalid(field, publicKeyHint, "key type %s is not supported", typ)
	}
	if typ == ssh.KeyAlgoRSA {
		ck, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return nil, api.Invalid(field, publicKeyHint, "RSA key cannot be read")
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, api.Invalid(field, publicKeyHint, "RSA key cannot be read")
		}
		if bits := rk.N.BitLen(); bits < minRSABits {
			return nil, api.Invalid(field, "make a new key: ssh-keygen -t ed25519 (or -t rsa -b 4096)", "RSA key has %d bits, fewer than %d", bits, minRSABits)
		}
	}
	if len(comment) > maxKeyComment || strings.IndexFunc(comment, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return nil, api.Invalid(field, fmt.Sprintf("use a comment of at most %d printable characters", maxKeyComment), "key comment is not valid")
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if comment != "" {
		line += " " + comment
	}
	return &PublicKey{Line: line, Type: typ, Fingerprint: ssh.FingerprintSHA256(key)}, nil
}

// ValidateKeyPairCreate normalises a new key pair's key and sets its
// status.
func ValidateKeyPairCreate(kp *api.KeyPair) error {
	k, err := ParsePublicKey("spec.publicKey", kp.Spec.PublicKey)
	if err != nil {
		return err
	}
	kp.Spec.PublicKey = k.Line
	kp.Status = api.KeyPairStatus{Fingerprint: k.Fingerprint, Type: k.Type}
	return nil
}

// ValidateKeyPairUpdate keeps the key: only labels may change. The same
// key written differently (spacing, base64 padding) is no change.
func ValidateKeyPairUpdate(old, kp *api.KeyPair) error {
	if kp.Spec.PublicKey == old.Spec.PublicKey {
		return nil
	}
	k, err := ParsePublicKey("spec.publicKey", kp.Spec.PublicKey)
	if err != nil {
		return err
	}
	if k.Line != old.Spec.PublicKey {
		return api.Invalid("spec.publicKey", "import the new key as a new key pair", "the public key of a key pair cannot change")
	}
	kp.Spec.PublicKey = old.Spec.PublicKey
	return nil
}

// resolveKeyName returns the public key of the key pair name in project,
// or an error naming field when there is none.
func (a *Admitter) resolveKeyName(ctx context.Context, field, project, name string) (string, error) {
	if e := api.ValidateName(field, name); e != nil {
		return "", e
	}
	var kp api.KeyPair
	if err := a.st.Get(ctx, api.KeyPairKind, project, name, &kp); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", api.Invalid(field, "list the key pairs with `ouro keypair list`, or create one with `ouro keypair create`",
				"key pair %q does not exist in project %s", name, project)
		}
		return "", fmt.Errorf("get key pair: %w", err)
	}
	return kp.Spec.PublicKey, nil
}

// validateInstanceAccess checks an instance's key name and user-data at
// create and copies the key pair's public key into spec.publicKeys.
// publicKeys belong to the server: a create that sets them is refused, so
// that nobody mistakes them for a way to pass keys without a key pair.
func (a *Admitter) validateInstanceAccess(ctx context.Context, in *api.Instance) error {
	spec := &in.Spec
	if len(spec.PublicKeys) > 0 {
		return api.Invalid("spec.publicKeys", "name a key pair in spec.keyName instead; the server copies its key", "publicKeys are set by the server")
	}
	if spec.KeyName != "" {
		key, err := a.resolveKeyName(ctx, "spec.keyName", in.Metadata.Project, spec.KeyName)
		if err != nil {
			return err
		}
		spec.PublicKeys = []string{key}
	}
	return validateUserData("spec.userData", spec.UserData)
}

// validateUserData checks the size of user-data; any bytes are allowed
// (cloud-init takes scripts, cloud-config and MIME multipart).
func validateUserData(field, data string) error {
	if len(data) > MaxUserData {
		return api.Invalid(field, "keep user-data within 16 KiB and let it fetch the rest",
			"user-data is %d bytes, more than %d", len(data), MaxUserData)
	}
	return nil
}

// validateInstanceAccessUpdate keeps the key and user-data an instance was
// created with. An update that leaves spec.publicKeys out keeps them.
func validateInstanceAccessUpdate(old, in *api.Instance) error {
	o, n := &old.Spec, &in.Spec
	switch {
	case n.KeyName != o.KeyName:
		return Immutable("spec.keyName")
	case n.UserData != o.UserData:
		return Immutable("spec.userData")
	}
	if len(n.PublicKeys) == 0 {
		n.PublicKeys = o.PublicKeys
	} else if !slices.Equal(n.PublicKeys, o.PublicKeys) {
		return Immutable("spec.publicKeys")
	}
	return nil
}
