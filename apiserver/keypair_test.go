package apiserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
)

// authorizedKey returns the authorized_keys line of a public key with
// comment (none when empty).
func authorizedKey(t *testing.T, pub any, comment string) string {
	t.Helper()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

func TestKeyPairs(t *testing.T) {
	e := newEnv(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	line := authorizedKey(t, pub, "me@laptop")
	f := strings.Fields(line)
	base := "/v1/projects/default/keypairs"

	var kp api.KeyPair
	e.must(http.StatusCreated, "POST", base, e.admin, api.KeyPair{Metadata: api.ObjectMeta{Name: "laptop"},
		Spec: api.KeyPairSpec{PublicKey: f[0] + "  " + f[1] + "  me@laptop\n"}}).decode(t, &kp)
	sk, _ := ssh.NewPublicKey(pub)
	if kp.Spec.PublicKey != line || kp.Status.Type != "ssh-ed25519" || kp.Status.Fingerprint != ssh.FingerprintSHA256(sk) {
		t.Fatalf("created %+v", kp)
	}

	// A bad key is refused and stores nothing.
	r := e.must(http.StatusBadRequest, "POST", base, e.admin, api.KeyPair{Metadata: api.ObjectMeta{Name: "bad"}, Spec: api.KeyPairSpec{PublicKey: "ssh-rsa nope"}})
	if ae := r.apiError(); ae.Field != "spec.publicKey" {
		t.Errorf("bad key: %+v", ae)
	}
	e.must(http.StatusNotFound, "GET", base+"/bad", e.admin, nil)

	// The key cannot change; the same key written otherwise is no change;
	// labels can.
	changed := kp
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	changed.Spec.PublicKey = authorizedKey(t, other, "")
	if ae := e.must(http.StatusBadRequest, "PUT", base+"/laptop", e.admin, changed).apiError(); ae.Field != "spec.publicKey" {
		t.Errorf("changed key: %+v", ae)
	}
	changed = kp
	changed.Spec.PublicKey = f[0] + "   " + f[1] + " me@laptop"
	changed.Metadata.Labels = map[string]string{"owner": "me"}
	var updated api.KeyPair
	e.must(http.StatusOK, "PUT", base+"/laptop", e.admin, changed).decode(t, &updated)
	if updated.Spec.PublicKey != line || updated.Metadata.Labels["owner"] != "me" || updated.Status != kp.Status {
		t.Errorf("updated %+v", updated)
	}
	// Status belongs to the server.
	updated.Status.Fingerprint = "SHA256:forged"
	if ae := e.must(http.StatusBadRequest, "PUT", base+"/laptop/status", e.admin, updated).apiError(); ae.Field != "status" {
		t.Errorf("status write: %+v", ae)
	}

	// Viewers read key pairs; only members write them.
	viewer := e.userToken("vera", map[string]api.Role{"default": api.RoleViewer})
	e.must(http.StatusOK, "GET", base+"/laptop", viewer, nil)
	e.must(http.StatusForbidden, "POST", base, viewer, api.KeyPair{Metadata: api.ObjectMeta{Name: "v"}, Spec: api.KeyPairSpec{PublicKey: line}})

	// Key pairs go with their project.
	e.project("p2")
	e.must(http.StatusCreated, "POST", "/v1/projects/p2/keypairs", e.admin, api.KeyPair{Metadata: api.ObjectMeta{Name: "k"}, Spec: api.KeyPairSpec{PublicKey: line}})
	e.must(http.StatusOK, "DELETE", "/v1/projects/p2", e.admin, nil)
	e.must(http.StatusNotFound, "GET", "/v1/projects/p2/keypairs/k", e.admin, nil)
}

func TestInstanceKeyAndUserData(t *testing.T) {
	e := newEnv(t)
	e.image("default", "busybox", false)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	line := authorizedKey(t, pub, "me@laptop")
	e.must(http.StatusCreated, "POST", "/v1/projects/default/keypairs", e.admin, api.KeyPair{Metadata: api.ObjectMeta{Name: "laptop"}, Spec: api.KeyPairSpec{PublicKey: line}})
	base := "/v1/projects/default/instances"
	spec := func(name string, mod func(*api.InstanceSpec)) api.Instance {
		in := api.Instance{Metadata: api.ObjectMeta{Name: name}, Spec: api.InstanceSpec{Image: "busybox", Flavor: "tiny"}}
		mod(&in.Spec)
		return in
	}

	for _, tt := range []struct {
		name, field string
		mod         func(*api.InstanceSpec)
	}{
		{"unknown key pair", "spec.keyName", func(s *api.InstanceSpec) { s.KeyName = "nope" }},
		{"bad key name", "spec.keyName", func(s *api.InstanceSpec) { s.KeyName = "No_Such" }},
		{"public keys from the client", "spec.publicKeys", func(s *api.InstanceSpec) { s.PublicKeys = []string{line} }},
		{"user-data too large", "spec.userData", func(s *api.InstanceSpec) { s.UserData = strings.Repeat("x", admission.MaxUserData+1) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(http.StatusBadRequest, "POST", base, e.admin, spec("bad", tt.mod))
			if ae := r.apiError(); ae.Field != tt.field || ae.Hint == "" {
				t.Errorf("error %+v, want field %s with a hint", ae, tt.field)
			}
			e.must(http.StatusNotFound, "GET", base+"/bad", e.admin, nil)
		})
	}

	userData := "#cloud-config\n" + strings.Repeat("#", admission.MaxUserData-len("#cloud-config\n"))
	var in api.Instance
	e.must(http.StatusCreated, "POST", base, e.admin, spec("web", func(s *api.InstanceSpec) {
		s.KeyName, s.UserData = "laptop", userData
	})).decode(t, &in)
	if len(in.Spec.PublicKeys) != 1 || in.Spec.PublicKeys[0] != line || in.Spec.KeyName != "laptop" || in.Spec.UserData != userData {
		t.Fatalf("created %+v", in.Spec)
	}

	// Key and user-data are fixed at create; an update that leaves
	// publicKeys out keeps them.
	for _, tt := range []struct {
		field string
		mod   func(*api.InstanceSpec)
	}{
		{"spec.keyName", func(s *api.InstanceSpec) { s.KeyName = "" }},
		{"spec.userData", func(s *api.InstanceSpec) { s.UserData = "#!/bin/sh\n" }},
		{"spec.publicKeys", func(s *api.InstanceSpec) { s.PublicKeys = []string{"ssh-ed25519 AAAA other"} }},
	} {
		changed := in
		tt.mod(&changed.Spec)
		if ae := e.must(http.StatusBadRequest, "PUT", base+"/web", e.admin, changed).apiError(); ae.Field != tt.field {
			t.Errorf("changing %s: %+v", tt.field, ae)
		}
	}
	changed := in
	changed.Spec.PublicKeys = nil
	changed.Metadata.Labels = map[string]string{"a": "b"}
	var updated api.Instance
	e.must(http.StatusOK, "PUT", base+"/web", e.admin, changed).decode(t, &updated)
	if len(updated.Spec.PublicKeys) != 1 || updated.Spec.PublicKeys[0] != line {
		t.Errorf("publicKeys after an update without them: %v", updated.Spec.PublicKeys)
	}

	// Deleting the key pair leaves the instance's key alone.
	e.must(http.StatusOK, "DELETE", "/v1/projects/default/keypairs/laptop", e.admin, nil)
	var after api.Instance
	e.must(http.StatusOK, "GET", base+"/web", e.admin, nil).decode(t, &after)
	if len(after.Spec.PublicKeys) != 1 || after.Spec.PublicKeys[0] != line {
		t.Errorf("publicKeys after the key pair was deleted: %v", after.Spec.PublicKeys)
	}
}
