package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// lbAPICommand is lbWebCommand that also answers its name at /api.
func lbAPICommand() []string {
	return []string{"sh", "-c", fmt.Sprintf(
		"mkdir -p /www && hostname > /www/index.html && hostname > /www/api && echo ok > /www/healthz && exec httpd -f -p %d -h /www", lbMemberPort)}
}

// fetchURL sends GET url with hc, with the Host header host when it is
// set, and returns the trimmed body of a 200 answer.
func fetchURL(hc *http.Client, url, host string) (string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// waitFetch waits until GET url (with Host host) answers one of want.
func waitFetch(t *testing.T, hc *http.Client, url, host string, want ...string) {
	t.Helper()
	wait.ForDetail(t, 30*time.Second, fmt.Sprintf("GET %s (host %q) answered by one of %v", url, host, want), func() (bool, string) {
		body, err := fetchURL(hc, url, host)
		if err != nil {
			return false, err.Error()
		}
		for _, w := range want {
			if body == w {
				return true, ""
			}
		}
		return false, fmt.Sprintf("answered %q", body)
	})
}

// TestLBListeners changes a load balancer's listeners and pools while an
// http listener serves a steady load: no request fails (the reloads are
// hitless); an http listener routes by path and host to a second pool; an
// https listener terminates TLS with the uploaded certificate.
func TestLBListeners(t *testing.T) {
	nc := newNetCloud(t, 1)
	nc.killLBLeftovers()
	nc.create(vm{name: "a1", command: lbWebCommand()})
	nc.create(vm{name: "a2", command: lbWebCommand()})
	nc.create(vm{name: "b1", command: lbAPICommand()})
	nc.create(vm{name: "client"})
	client, err := nc.instanceNetns("", "client")
	if err != nil {
		t.Fatal(err)
	}
	nc.ouro("lb", "create", "web", "--network", "default", "--listen", "80/http", "--instance", "a1", "--instance", "a2",
		"--port", fmt.Sprint(lbMemberPort), "--health", "http:/healthz", "--wait")
	lb := nc.waitLBActive("", "web")
	lb = nc.waitMembersUp("", "web", 30*time.Second, "a1", "a2")
	waitAnswers(t, client, vipAddr(lb), 30*time.Second, "a1", "a2")
	// The network's DNS names the VIP.
	if lb.Status.DNSName != "web.lb" {
		t.Errorf("dnsName = %q, want web.lb", lb.Status.DNSName)
	}
	wait.ForDetail(t, 30*time.Second, "client resolving web.lb", func() (bool, string) {
		out, err := nc.exec("", "client", "nslookup", "web.lb")
		_, answer, _ := strings.Cut(out, "Name:")
		return err == nil && strings.Contains(answer, lb.Status.VIP), fmt.Sprintf("%v: %s", err, out)
	})

	load := startLoad(t, client, vipAddr(lb), 2, 5*time.Second)
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)

	nc.ouro("lb", "pool", "add", "web", "api", "--instance", "b1", "--port", fmt.Sprint(lbMemberPort), "--health", "http:/healthz")
	// A pool no listener sends to is not checked (its health is unknown)
	// until the listener that routes to it comes.
	nc.ouro("lb", "listener", "add", "web", "--port", "81", "--protocol", "http", "--pool", "default",
		"--rule", "path=/api,pool=api", "--rule", "host=api.example,pool=api")
	nc.waitMembersUp("", "web", 30*time.Second, "a1", "a2", "b1")
	dir := t.TempDir()
	certFile, keyFile := writeCertPair(t, dir, "web", "web.example")
	nc.ouro("lb", "listener", "add", "web", "--port", "443", "--protocol", "https", "--pool", "default", "--cert", certFile, "--key", keyFile)
	nc.waitApplied()
	lb = nc.waitLBActive("", "web")

	hc := httpClientIn(client, 3*time.Second)
	base := "http://" + net.JoinHostPort(lb.Status.VIP, "81")
	waitFetch(t, hc, base+"/api", "", "b1")
	waitFetch(t, hc, base+"/", "", "a1", "a2")
	waitFetch(t, hc, base+"/", "api.example", "b1")
	for i := 0; i < 6; i++ {
		if body, err := fetchURL(hc, base+"/", ""); err != nil || body == "b1" {
			t.Errorf("GET / on 81 without a matching rule: %q, %v; want the default pool", body, err)
		}
	}

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tlsClient := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: netnsDialer(client),
		DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "web.example"}}}
	waitFetch(t, tlsClient, "https://"+net.JoinHostPort(lb.Status.VIP, "443")+"/", "", "a1", "a2")

	// Deleting listeners and pools reloads too; port 80 keeps serving.
	nc.ouro("lb", "listener", "delete", "web", "https-443")
	nc.ouro("lb", "listener", "delete", "web", "http-81")
	nc.ouro("lb", "pool", "delete", "web", "api")
	nc.waitMembersUp("", "web", 30*time.Second, "a1", "a2")
	nc.waitApplied()
	wait.ForDetail(t, 30*time.Second, "port 443 closed", func() (bool, string) {
		return !dialable(client, net.JoinHostPort(lb.Status.VIP, "443"), time.Second), "still open"
	})
	load.waitAnswersSince(t, time.Now(), 20, 30*time.Second)
	load.expectNoFailure(t, "listeners and pools added and deleted")
}
