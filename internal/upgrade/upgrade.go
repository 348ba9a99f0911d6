// Package upgrade turns an HTTP/1.1 request into a raw two-way byte stream
// (the "Connection: Upgrade" handshake answered with 101 Switching
// Protocols, as WebSocket and Docker's attach use it) and copies bytes
// between two such streams. The API server and the agent serve instance
// consoles with it.
package upgrade

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Requested reports whether r asks to switch to protocol.
func Requested(r *http.Request, protocol string) bool {
	return headerHas(r.Header, "Connection", "upgrade") && strings.EqualFold(r.Header.Get("Upgrade"), protocol)
}

// SetHeaders makes req ask to switch to protocol.
func SetHeaders(req *http.Request, protocol string) {
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol)
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Accept takes over the connection of w, answers 101 Switching Protocols
// to protocol and returns the connection. Reads return what the client
// sends, including bytes it sent right after its request. The server's
// read and write deadlines are cleared: the stream lasts as long as both
// sides want.
func Accept(w http.ResponseWriter, protocol string) (io.ReadWriteCloser, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("take over the connection: %w", err)
	}
	conn.SetDeadline(time.Time{})
	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + protocol + "\r\n\r\n"
	if _, err := conn.Write([]byte(resp)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("answer the upgrade: %w", err)
	}
	return &stream{Conn: conn, r: brw.Reader}, nil
}

// stream is a hijacked connection read through the server's buffer.
type stream struct {
	net.Conn
	r *bufio.Reader
}

func (s *stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Splice copies bytes both ways between a and b until one side ends, then
// closes both; it returns when both copies are over. ctx ending closes both
// too.
func Splice(ctx context.Context, a, b io.ReadWriteCloser) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(a, b)
		closeBoth()
	})
	io.Copy(b, a)
	closeBoth()
	wg.Wait()
}
