package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// writeCertPair writes a self-signed certificate for host and its key as
// PEM files in dir, and returns their paths.
func writeCertPair(t *testing.T, dir, name, host string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestLBBadInput: a listener port in use on the same load balancer, an
// unknown group, another project's group and a bad certificate are
// refused by the CLI and by the server, the message names the field, and
// nothing changes.
func TestLBBadInput(t *testing.T) {
	c := newCloud(t)
	c.importBusybox()
	c.ouro("group", "create", "web", "--image", "busybox", "--flavor", "tiny", "--count", "0", "--", "sleep", "3600")
	c.ouro("project", "create", "other")
	c.ouro("group", "create", "og", "--project", "other", "--image", "busybox", "--flavor", "tiny", "--count", "0", "--", "sleep", "3600")
	c.ouro("lb", "create", "web", "--network", "default", "--listen", "80", "--group", "web", "--port", "8080")
	before, _ := c.lbJSON("", "web")

	dir := t.TempDir()
	goodCert, goodKey := writeCertPair(t, dir, "good", "web.example")
	_, otherKey := writeCertPair(t, dir, "other", "other.example")
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		// want is what the message must name (any of them).
		want []string
	}{
		// Without --name the listener would be tcp-80 again: the port is
		// what is in use, and the message names the listener that has it.
		{"listener port and name in use", []string{"lb", "listener", "add", "web", "--port", "80", "--pool", "default"}, []string{"port", "tcp-80"}},
		{"listener port in use", []string{"lb", "listener", "add", "web", "--port", "80", "--pool", "default", "--name", "second"}, []string{"port"}},
		{"listener port in use, other protocol", []string{"lb", "listener", "add", "web", "--port", "80", "--protocol", "http", "--pool", "default", "--name", "again"}, []string{"port"}},
		{"unknown group", []string{"lb", "create", "bad1", "--network", "default", "--listen", "80", "--group", "nosuch", "--port", "8080"}, []string{"group"}},
		{"another project's group", []string{"lb", "create", "bad2", "--network", "default", "--listen", "80", "--group", "og", "--port", "8080"}, []string{"group"}},
		{"pool of another project's group", []string{"lb", "pool", "add", "web", "theirs", "--group", "og", "--port", "8080"}, []string{"group"}},
		{"unknown pool", []string{"lb", "listener", "add", "web", "--port", "81", "--pool", "nosuch"}, []string{"pool"}},
		{"garbage certificate", []string{"lb", "listener", "add", "web", "--port", "443", "--protocol", "https", "--pool", "default",
			"--cert", garbage, "--key", goodKey}, []string{"cert"}},
		{"certificate and key do not match", []string{"lb", "listener", "add", "web", "--port", "443", "--protocol", "https", "--pool", "default",
			"--cert", goodCert, "--key", otherKey}, []string{"cert", "key"}},
		{"https without a certificate", []string{"lb", "listener", "add", "web", "--port", "443", "--protocol", "https", "--pool", "default"}, []string{"cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := c.run(nil, tc.args...)
			if err == nil {
				t.Fatalf("ouro %s succeeded: %s", strings.Join(tc.args, " "), out)
			}
			named := false
			for _, w := range tc.want {
				named = named || strings.Contains(strings.ToLower(errOut), w)
			}
			if !named {
				t.Errorf("ouro %s: the message does not name %v: %s", strings.Join(tc.args, " "), tc.want, errOut)
			}
		})
	}

	// The server refuses the same, whatever the client.
	cl := c.clientAs(c.admin)
	ctx := context.Background()
	cert, _ := os.ReadFile(goodCert)
	key, _ := os.ReadFile(otherKey)
	for _, tc := range []struct {
		name string
		edit func(*api.LoadBalancer)
		want string
	}{
		{"listener port in use", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Name: "dup", Protocol: api.ListenerTCP, Port: 80, DefaultPool: "default"})
		}, "port"},
		{"another project's group", func(lb *api.LoadBalancer) {
			lb.Spec.Pools = append(lb.Spec.Pools, api.Pool{Name: "theirs", Group: "og", Port: 8080})
		}, "group"},
		{"certificate and key do not match", func(lb *api.LoadBalancer) {
			lb.Spec.Listeners = append(lb.Spec.Listeners, api.Listener{Name: "tls", Protocol: api.ListenerHTTPS, Port: 443,
				DefaultPool: "default", Certificate: string(cert), Key: string(key)})
		}, "spec.listeners"},
		{"VIP changed", func(lb *api.LoadBalancer) { lb.Spec.VIP = "172.31.15.250" }, "spec.vip"},
	} {
		t.Run("server/"+tc.name, func(t *testing.T) {
			var lb api.LoadBalancer
			if err := cl.Get(ctx, api.LoadBalancerKind, "default", "web", &lb); err != nil {
				t.Fatal(err)
			}
			tc.edit(&lb)
			err := cl.Update(ctx, &lb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("update: %v; want an error naming %s", err, tc.want)
			}
		})
	}

	after, raw := c.lbJSON("", "web")
	if after.Metadata.ResourceVersion != before.Metadata.ResourceVersion || after.Metadata.Generation != before.Metadata.Generation ||
		!reflect.DeepEqual(after.Spec, before.Spec) {
		t.Errorf("refused changes changed the load balancer:\nbefore %+v\nafter  %s", before, raw)
	}
	for _, n := range []string{"bad1", "bad2"} {
		if _, errOut, err := c.run(nil, "lb", "get", n); err == nil || !strings.Contains(strings.ToLower(errOut), "not found") {
			t.Errorf("lb get %s after a refused create: %v %s", n, err, errOut)
		}
	}
	if items := listJSON[api.LoadBalancer](c, "lb", "list"); len(items) != 1 {
		t.Errorf("lb list after refused creates: %d load balancers, want 1", len(items))
	}

	// The good pair is accepted: what was refused was the input.
	c.ouro("lb", "listener", "add", "web", "--port", "443", "--protocol", "https", "--pool", "default", "--cert", goodCert, "--key", goodKey)
	got, raw := c.lbJSON("", "web")
	if len(got.Spec.Listeners) != 2 {
		t.Fatalf("after adding an https listener: %s", raw)
	}
	for _, l := range got.Spec.Listeners {
		if l.Key != "" {
			t.Errorf("the API returns listener %s's private key", l.Name)
		}
	}
}
