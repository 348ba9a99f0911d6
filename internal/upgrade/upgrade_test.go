package upgrade

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRequested(t *testing.T) {
	for _, tt := range []struct {
		conn, upgrade string
		want          bool
	}{
		{"Upgrade", "ouro-console", true},
		{"keep-alive, upgrade", "OURO-CONSOLE", true},
		{"", "ouro-console", false},
		{"Upgrade", "websocket", false},
		{"close", "ouro-console", false},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Connection", tt.conn)
		r.Header.Set("Upgrade", tt.upgrade)
		if got := Requested(r, "ouro-console"); got != tt.want {
			t.Errorf("Connection %q Upgrade %q: %v, want %v", tt.conn, tt.upgrade, got, tt.want)
		}
	}
}

// TestAcceptKeepsEarlyBytes sends bytes right behind the request, before
// the 101 could arrive: they must reach the server's stream, then Splice
// echoes them back through a pipe.
func TestAcceptKeepsEarlyBytes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := Accept(w, "test")
		if err != nil {
			t.Error(err)
			return
		}
		near, far := net.Pipe()
		go func() { io.Copy(far, far) }() // an echoing "console"
		Splice(r.Context(), conn, near)
		far.Close()
	}))
	t.Cleanup(srv.Close)
	c, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\nearly\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "test" {
		t.Fatalf("answer %v, %v", resp, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "early\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
	io.WriteString(c, "late\n")
	if line, err := br.ReadString('\n'); err != nil || line != "late\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
}

func TestSpliceEndsWithContext(t *testing.T) {
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Splice(ctx, a1, b1); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Splice did not end with its context")
	}
	for _, c := range []net.Conn{a2, b2} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("far end after Splice: %v, want EOF", err)
		}
	}
}
