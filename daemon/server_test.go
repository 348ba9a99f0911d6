package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/ouroboros-cloud/ouro/blobrepl"
	"github.com/ouroboros-cloud/ouro/internal/etcdtest"
)

// TestServerAloneStoresBlobs starts a whole server: alone, an upload is
// stored and answered as ever, and the internal blob routes refuse a
// caller without the server certificate even though the listener asks
// for client certificates.
func TestServerAloneStoresBlobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	srv, err := StartServer(ctx, ServerConfig{DataDir: filepath.Join(dir, "server"), Listen: "127.0.0.1:0", Name: "s1",
		EtcdClientURL: etcdtest.FreeURL(t), EtcdPeerURL: etcdtest.FreeURL(t), Logger: etcdtest.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CACert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	data := []byte("a blob for a lone server")
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v1/blobs/" + digest, http.StatusCreated},
		{blobrepl.PathPrefix + digest, http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodPut, srv.URL+tc.path, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("PUT %s: %s, want %d", tc.path, resp.Status, tc.want)
		}
	}
}
