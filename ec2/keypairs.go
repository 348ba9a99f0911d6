package ec2

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// Key pairs ↔ key pairs. CreateKeyPair makes the private key on the
// server, answers it once and keeps only the public key. The
// fingerprint is the one the REST API shows (SHA-256 of the public key).

func init() {
	register(ec2API,
		Action{Name: "ImportKeyPair", Params: params(dryRun, tagSpecParams, []string{"KeyName", "PublicKeyMaterial"}), Run: importKeyPair},
		Action{Name: "CreateKeyPair", Params: params(dryRun, tagSpecParams, []string{"KeyName", "KeyType", "KeyFormat"}), Run: createKeyPair},
		Action{Name: "DescribeKeyPairs", Params: params(dryRun, filters, []string{"KeyName.N", "KeyPairId.N", "IncludePublicKey"}), Run: describeKeyPairs},
		Action{Name: "DeleteKeyPair", Params: params(dryRun, []string{"KeyName", "KeyPairId"}), Run: deleteKeyPair},
	)
}

type keyPairItem struct {
	KeyPairID   string `xml:"keyPairId"`
	KeyName     string `xml:"keyName"`
	Fingerprint string `xml:"keyFingerprint"`
	KeyType     string `xml:"keyType"`
	TagSet      []Tag  `xml:"tagSet>item"`
	PublicKey   string `xml:"publicKey,omitempty"`
	CreateTime  string `xml:"createTime"`
	labels      map[string]string
}

func keyItem(k *api.KeyPair, public bool) keyPairItem {
	it := keyPairItem{KeyPairID: idOf(PrefixKeyPair, k), KeyName: k.Metadata.Name, Fingerprint: k.Status.Fingerprint,
		KeyType: keyType(k.Status.Type), TagSet: tagSet(&k.Metadata),
		CreateTime: k.Metadata.CreationTimestamp.UTC().Format(time.RFC3339), labels: tagsOf(&k.Metadata)}
	if public {
		it.PublicKey = k.Spec.PublicKey
	}
	return it
}

// keyType names a key's type as EC2 does (rsa, ed25519).
func keyType(t string) string {
	switch t {
	case "ssh-rsa":
		return "rsa"
	case "ssh-ed25519":
		return "ed25519"
	}
	return strings.TrimPrefix(t, "ssh-")
}

type importKeyPairResponse struct {
	Response
	KeyFingerprint string `xml:"keyFingerprint"`
	KeyName        string `xml:"keyName"`
	KeyPairID      string `xml:"keyPairId"`
	TagSet         []Tag  `xml:"tagSet>item"`
}

type createKeyPairResponse struct {
	importKeyPairResponse
	KeyMaterial string `xml:"keyMaterial"`
}

func (c *Call) makeKeyPair(publicKey string) (*api.KeyPair, error) {
	name, err := c.Params.Required("KeyName")
	if err != nil {
		return nil, err
	}
	if e := api.ValidateName("KeyName", name); e != nil {
		return nil, invalidValue("Invalid key pair name '%s': %s (%s)", clip(name), e.Message, e.Hint)
	}
	tags, err := tagSpecs(c.Params, "key-pair")
	if err != nil {
		return nil, err
	}
	if err := c.authorize(auth.VerbCreate, api.KeyPairKind); err != nil {
		return nil, err
	}
	if publicKey == "" {
		return nil, nil
	}
	k := &api.KeyPair{Metadata: withTags(api.ObjectMeta{Name: name, Project: c.Project}, tags), Spec: api.KeyPairSpec{PublicKey: publicKey}}
	if _, err := c.create(k, ""); err != nil {
		if ae, ok := err.(*api.Error); ok && ae.Code == api.CodeAlreadyExists {
			return nil, Errorf("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", name)
		}
		if ae, ok := err.(*api.Error); ok && ae.Status == 400 {
			return nil, invalidValue("Value for parameter PublicKeyMaterial is invalid: %s", ae.Message)
		}
		return nil, fromAPI(err, nil)
	}
	return k, nil
}

func importKeyPair(c *Call) (any, error) {
	material, err := c.Params.Required("PublicKeyMaterial")
	if err != nil {
		return nil, err
	}
	// The SDKs send the key base64-encoded (a blob); the key itself is
	// accepted as well.
	pub := material
	if b, err := base64.StdEncoding.DecodeString(material); err == nil {
		pub = string(b)
	}
	k, err := c.makeKeyPair(strings.TrimSpace(pub))
	if err != nil {
		return nil, err
	}
	return &importKeyPairResponse{KeyFingerprint: k.Status.Fingerprint, KeyName: k.Metadata.Name, KeyPairID: idOf(PrefixKeyPair, k), TagSet: tagSet(&k.Metadata)}, nil
}

func createKeyPair(c *Call) (any, error) {
	typ := c.Params.String("KeyType")
	format := c.Params.String("KeyFormat")
	if format != "" && format != "pem" {
		return nil, invalidValue("KeyFormat '%s' is not supported: use pem", clip(format))
	}
	if _, err := c.makeKeyPair(""); err != nil { // checks name, tags and rights first
		return nil, err
	}
	var private, public string
	switch typ {
	case "", "rsa":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		private = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
		sp, err := ssh.NewPublicKey(&key.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		public = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	case "ed25519":
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		block, err := ssh.MarshalPrivateKey(key, "")
		if err != nil {
			return nil, fmt.Errorf("encode key: %w", err)
		}
		private = string(pem.EncodeToMemory(block))
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		public = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	default:
		return nil, invalidValue("KeyType '%s' is not valid: use rsa or ed25519", clip(typ))
	}
	k, err := c.makeKeyPair(public)
	if err != nil {
		return nil, err
	}
	out := &createKeyPairResponse{KeyMaterial: private}
	out.KeyFingerprint, out.KeyName, out.KeyPairID, out.TagSet = k.Status.Fingerprint, k.Metadata.Name, idOf(PrefixKeyPair, k), tagSet(&k.Metadata)
	return out, nil
}

type describeKeyPairsResponse struct {
	Response
	Keys []keyPairItem `xml:"keySet>item"`
}

var keyFilters = filterSet[keyPairItem]{
	"key-name":    func(k keyPairItem) []string { return []string{k.KeyName} },
	"key-pair-id": func(k keyPairItem) []string { return []string{k.KeyPairID} },
	"fingerprint": func(k keyPairItem) []string { return []string{k.Fingerprint} },
	"key-type":    func(k keyPairItem) []string { return []string{k.KeyType} },
}

func keyNotFound(name string) *Error {
	return notFound("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", clip(name))
}

func describeKeyPairs(c *Call) (any, error) {
	keep, err := parseFilters(c.Params, keyFilters, func(k keyPairItem) map[string]string { return k.labels })
	if err != nil {
		return nil, err
	}
	public, err := c.Params.Bool("IncludePublicKey", false)
	if err != nil {
		return nil, err
	}
	objs, err := c.list(api.KeyPairKind, nil)
	if err != nil {
		return nil, err
	}
	names, ids := c.Params.List("KeyName"), c.Params.List("KeyPairId")
	byName, byID := map[string]*api.KeyPair{}, map[string]*api.KeyPair{}
	for _, o := range objs {
		k := o.(*api.KeyPair)
		byName[k.Metadata.Name], byID[idOf(PrefixKeyPair, k)] = k, k
	}
	var keys []*api.KeyPair
	for _, n := range names {
		k, ok := byName[n]
		if !ok {
			return nil, keyNotFound(n)
		}
		keys = append(keys, k)
	}
	for _, id := range ids {
		k, ok := byID[id]
		if !ok {
			return nil, keyNotFound(id)
		}
		keys = append(keys, k)
	}
	if len(names) == 0 && len(ids) == 0 {
		for _, o := range objs {
			keys = append(keys, o.(*api.KeyPair))
		}
	}
	out := &describeKeyPairsResponse{}
	for _, k := range keys {
		if it := keyItem(k, public); keep(it) {
			out.Keys = append(out.Keys, it)
		}
	}
	return out, nil
}

type deleteKeyPairResponse struct {
	Response
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

// deleteKeyPair deletes a key pair; a missing one is no error, as AWS
// answers.
func deleteKeyPair(c *Call) (any, error) {
	name, id := c.Params.String("KeyName"), c.Params.String("KeyPairId")
	if name == "" && id == "" {
		return nil, missing("KeyName")
	}
	if err := c.authorize(auth.VerbDelete, api.KeyPairKind); err != nil {
		return nil, err
	}
	objs, err := c.list(api.KeyPairKind, func(o api.Object) bool {
		return name != "" && o.Meta().Name == name || id != "" && idOf(PrefixKeyPair, o) == id
	})
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		if id != "" {
			return nil, keyNotFound(id)
		}
		return &deleteKeyPairResponse{Return: true}, nil
	}
	if err := c.remove(objs[0]); err != nil {
		return nil, fromAPI(err, nil)
	}
	return &deleteKeyPairResponse{Return: true, KeyPairID: idOf(PrefixKeyPair, objs[0])}, nil
}
