package agentproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/pki"
)

// fakeAgent starts an agent endpoint over mutual TLS with a certificate
// of ca for host h1 and returns a Client that calls it as the server
// does. The agent refuses callers other than the server.
func fakeAgent(t *testing.T, h http.HandlerFunc) (*Client, *httptest.Server) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := ca.IssueServerCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR("h1", nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignCSR(csrPEM, []string{"127.0.0.1"}, "h1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.PeerCertificates[0].Subject.CommonName != pki.ServerCN {
			http.Error(w, "bad caller", http.StatusForbidden)
			return
		}
		h(w, r)
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	agent.StartTLS()
	t.Cleanup(agent.Close)
	return New(ca, &serverCert), agent
}

// apiError answers like an agent refusing a request.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: api.CodeInvalid, Message: msg}})
}

func TestLogsAndExec(t *testing.T) {
	c, agent := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/instances/u1/logs":
			w.Write([]byte("line " + r.URL.Query().Get("tail") + " follow " + r.URL.Query().Get("follow") + "\n"))
		case "/v1/instances/u1/exec":
			var req api.ExecRequest
			json.NewDecoder(r.Body).Decode(&req)
			json.NewEncoder(w).Encode(api.ExecResponse{ExitCode: 3, Stdout: []byte(strings.Join(req.Command, " ")), Stderr: req.Stdin})
		case "/v1/instances/refused/logs", "/v1/instances/refused/exec":
			apiError(w, http.StatusBadRequest, "not here")
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	})
	ctx := context.Background()
	target := Target{Endpoint: agent.URL, Host: "h1", UID: "u1"}

	logs, err := c.Logs(ctx, target, "false", "5")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(logs)
	logs.Close()
	if string(got) != "line 5 follow false\n" {
		t.Errorf("logs = %q", got)
	}
	out, err := c.Exec(ctx, target, api.ExecRequest{Command: []string{"echo", "hi"}, Stdin: []byte("in"), TimeoutSeconds: 5})
	if err != nil {
		t.Fatal(err)
	}
	if out.ExitCode != 3 || string(out.Stdout) != "echo hi" || string(out.Stderr) != "in" {
		t.Errorf("exec = %+v", out)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	failures := []struct {
		name   string
		target Target
		status int
		code   string
	}{
		{"agent refuses", Target{Endpoint: agent.URL, Host: "h1", UID: "refused"}, http.StatusBadRequest, api.CodeInvalid},
		{"agent fails", Target{Endpoint: agent.URL, Host: "h1", UID: "other"}, http.StatusServiceUnavailable, api.CodeUnavailable},
		{"agent down", Target{Endpoint: down.URL, Host: "h1", UID: "u1"}, http.StatusServiceUnavailable, api.CodeUnavailable},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code {
					t.Errorf("%s: %v, want %d %s", op, err, tt.status, tt.code)
				}
			}
			_, err := c.Logs(ctx, tt.target, "", "")
			check("logs", err)
			_, err = c.Exec(ctx, tt.target, api.ExecRequest{Command: []string{"true"}, TimeoutSeconds: 5})
			check("exec", err)
		})
	}
}

func TestConsole(t *testing.T) {
	c, agent := fakeAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if !upgrade.Requested(r, api.ConsoleProtocol) {
			http.Error(w, "no upgrade", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/v1/instances/vm/console":
			conn, err := upgrade.Accept(w, api.ConsoleProtocol)
			if err != nil {
				t.Errorf("agent accept: %v", err)
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				conn.Write([]byte(strings.ToUpper(line)))
			}
		default:
			apiError(w, http.StatusBadRequest, "instance's driver (container) has no console; use exec")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := c.Console(ctx, Target{Endpoint: agent.URL, Host: "h1", UID: "ctr"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "has no console") {
		t.Errorf("console of a container: %v", err)
	}

	conn, err := c.Console(ctx, Target{Endpoint: agent.URL, Host: "h1", UID: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, in := range []string{"hello\n", "root\n"} {
		if _, err := io.WriteString(conn, in); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(in) {
			t.Fatalf("console answered %q, %v; want %q", got, err, strings.ToUpper(in))
		}
	}
}
