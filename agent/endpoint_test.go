package agent

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/pki"
)

// endpointClient returns an HTTPS client trusting the cluster CA and
// presenting certs.
func endpointClient(t *testing.T, h *harness, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.api.CA.Pool(), Certificates: certs}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// runningEndpoint starts an agent with one running instance and returns
// its endpoint URL and the instance's UID.
func runningEndpoint(t *testing.T, h *harness) (ep, uid string) {
	t.Helper()
	h.start(t, h.config())
	key, uid := h.place(t, newInstance("web"))
	h.waitInstance(t, key, "Running", phaseIs(api.PhaseRunning))
	waitFor(t, "agent endpoint in host status", func() bool {
		ep = h.host(t).Status.AgentEndpoint
		return ep != ""
	})
	return ep, uid
}

func TestEndpointRefusesCallersThatAreNotServers(t *testing.T) {
	h := newHarness(t)
	ep, uid := runningEndpoint(t, h)
	url := ep + "/v1/instances/" + uid + "/logs"
	other, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherServer, err := other.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := h.api.CA.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := endpointClient(t, h).Get(url); err == nil {
		t.Error("a client without a certificate was served")
	}
	if _, err := endpointClient(t, h, otherServer).Get(url); err == nil {
		t.Error("a client certificate from another CA was accepted")
	}
	resp, err := endpointClient(t, h, h.api.ClientCert(t, pki.AgentCNPrefix+"host-2")).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CN ouro-agent:host-2: status %d, want 403", resp.StatusCode)
	}
	resp, err = endpointClient(t, h, server).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("CN %s: status %d, want 200", pki.ServerCN, resp.StatusCode)
	}
}
