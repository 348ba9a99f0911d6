package agent

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/pki"
)

// endpointClient returns an HTTPS client trusting the fake cluster CA and
// presenting certs.
func endpointClient(t *testing.T, h *harness, certs ...tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(h.api.ca.cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// runningEndpoint starts an agent with one running instance and returns
// its endpoint URL.
func runningEndpoint(t *testing.T, h *harness) string {
	t.Helper()
	h.start(t, h.config())
	key := h.api.addInstance(newInstance("web", "uid-web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	var ep string
	waitFor(t, "agent endpoint in host status", func() bool {
		ep = h.api.host(testHost).Status.AgentEndpoint
		return ep != ""
	})
	return ep
}

func TestEndpointRefusesCallersThatAreNotServers(t *testing.T) {
	h := newHarness(t)
	ep := runningEndpoint(t, h)
	url := ep + "/v1/instances/uid-web/logs"
	other := newTestCA(t, "other-ca")

	if _, err := endpointClient(t, h).Get(url); err == nil {
		t.Error("a client without a certificate was served")
	}
	if _, err := endpointClient(t, h, other.clientCert(t, pki.ServerCN)).Get(url); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	resp, err := endpointClient(t, h, h.api.ca.clientCert(t, "ouro-agent:host-2")).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CN ouro-agent:host-2: status %d, want 403", resp.StatusCode)
	}
	resp, err = endpointClient(t, h, h.api.ca.clientCert(t, pki.ServerCN)).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("CN ouro-server: status %d, want 200", resp.StatusCode)
	}
}
