package apiserver

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/agentproxy"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
)

// The web console's terminal reaches an instance's console and exec over
// a WebSocket: GET .../instances/{name}/console?ws=1 and
// GET .../instances/{name}/exec?ws=1&command=...[&tty=1] (docs/console.md,
// "Terminal"). The CLI's paths (POST .../console upgraded to
// api.ConsoleProtocol, POST .../exec with a JSON body or upgraded to
// api.ExecTTYProtocol) are unchanged.
//
// A browser cannot set an Authorization header on a WebSocket, so the
// terminal is signed in by its session cookie; a cookie is sent with any
// request to the server, whoever's page made it, so the request must come
// from a page of this server (Origin) and carry the session's CSRF token,
// as the subprotocol "csrf.<token>" or the query parameter csrf. A bearer
// token needs neither, as everywhere in the API.

// Terminal WebSocket bounds.
const (
	// TerminalProtocol is the subprotocol the server picks when the
	// browser offers it (besides its "csrf.<token>").
	TerminalProtocol = "ouro-terminal"
	// csrfProtocolPrefix starts the subprotocol that carries the CSRF
	// token.
	csrfProtocolPrefix = "csrf."
	// wsReadLimit bounds one message from the browser (keystrokes, a
	// paste).
	wsReadLimit = 1 << 20
	// wsPingEvery is how often the server pings an idle terminal; one
	// that answers nothing for wsIdle is closed.
	wsPingEvery = 30 * time.Second
	wsIdle      = 75 * time.Second
	// wsWriteWait bounds one write to the browser.
	wsWriteWait = 10 * time.Second
)

// terminalAuth is the identity of a terminal's request and the
// subprotocol to answer the handshake with.
type terminalAuth struct {
	id       *auth.Identity
	protocol string
}

// authenticateTerminal checks the Origin of a WebSocket handshake, then
// authenticates it by its bearer token, or by its session cookie and the
// session's CSRF token.
func (s *Server) authenticateTerminal(r *http.Request) (*terminalAuth, error) {
	if r.URL.Query().Get("ws") != "1" {
		return nil, api.Invalid("ws", "the web console's terminal sends ws=1; the CLI uses POST (`ouro instance console NAME`, `ouro instance exec NAME -- CMD`)",
			"GET of a console or exec is a WebSocket and needs ws=1")
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return nil, api.Invalid("", "connect with a WebSocket", "the request does not ask to upgrade to a WebSocket")
	}
	if err := sameOrigin(r); err != nil {
		return nil, err
	}
	offered := websocket.Subprotocols(r)
	ta := &terminalAuth{}
	for _, p := range offered {
		if p == TerminalProtocol {
			ta.protocol = p
		}
	}
	id, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	ta.id = id
	if _, ok := bearer(r); ok {
		return ta, nil
	}
	// Signed in by the session cookie.
	want := id.CSRFToken
	got := r.URL.Query().Get("csrf")
	for _, p := range offered {
		if t, ok := strings.CutPrefix(p, csrfProtocolPrefix); ok {
			got = t
			if ta.protocol == "" {
				// The browser fails a handshake that picks none of
				// the protocols it offered.
				ta.protocol = p
			}
		}
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return nil, &api.Error{Status: http.StatusForbidden, Code: api.CodeCSRFTokenInvalid,
			Message: "a terminal opened with the session cookie needs the session's CSRF token",
			Hint:    "send the session's csrfToken as the WebSocket subprotocol csrf.<token> or the query parameter csrf"}
	}
	return ta, nil
}

// sameOrigin refuses a handshake that a page of another site started: a
// browser always sends Origin with a WebSocket, and it must name this
// server's host. Clients that are not browsers send none.
func sameOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && (u.Scheme == "https" || u.Scheme == "http") && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
		Message: fmt.Sprintf("origin %q may not open a terminal on %s", origin, r.Host),
		Hint:    "open the console from this server's own address"}
}

// terminal runs h for an authenticated WebSocket handshake.
func (s *Server) terminal(h func(w http.ResponseWriter, r *http.Request, ta *terminalAuth) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ta, err := s.authenticateTerminal(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if lw, ok := w.(*statusWriter); ok {
			lw.identity = ta.id.String()
		}
		if err := h(w, r, ta); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// upgradeTerminal switches the connection to a WebSocket. The Origin was
// checked by authenticateTerminal.
func upgradeTerminal(w http.ResponseWriter, r *http.Request, ta *terminalAuth) (*websocket.Conn, error) {
	up := websocket.Upgrader{
		HandshakeTimeout: wsWriteWait,
		CheckOrigin:      func(*http.Request) bool { return true },
		// Errors are written by the handler's caller, as API errors.
		Error: func(http.ResponseWriter, *http.Request, int, error) {},
	}
	var hdr http.Header
	if ta.protocol != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {ta.protocol}}
	}
	ws, err := up.Upgrade(hijackable{w}, r, hdr)
	if err != nil {
		return nil, api.Invalid("", "connect with a WebSocket over HTTP/1.1", "cannot switch this connection: %v", err)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.status, sw.wroteHeader = http.StatusSwitchingProtocols, true
	}
	ws.SetReadLimit(wsReadLimit)
	return ws, nil
}

// hijackable lets the WebSocket upgrader take over a connection through
// the server's response writers (which unwrap, but do not hijack,
// themselves). The server's deadlines are cleared: a terminal lasts as
// long as both sides want.
type hijackable struct{ http.ResponseWriter }

func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		conn.SetDeadline(time.Time{})
	}
	return conn, brw, err
}

// consoleWS connects a browser to an instance's console: binary messages
// carry the console's bytes both ways; text messages from the browser are
// control messages (a resize, {"cols":80,"rows":24}), which a serial
// console has no use for.
func (h *agentHandlers) consoleWS(w http.ResponseWriter, r *http.Request, ta *terminalAuth) error {
	_, target, err := h.runningInstance(r, ta.id)
	if err != nil {
		return err
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	agent, err := h.agents.Console(ctx, target)
	if err != nil {
		return err
	}
	ws, err := upgradeTerminal(w, r, ta)
	if err != nil {
		agent.Close()
		return err
	}
	bridge(ctx, ws, agent)
	return nil
}

// execWS runs a command in an instance for a browser: the command's
// standard output, then its standard error, arrive as binary messages,
// then a text message {"exitCode":N} (and "truncated":true when output
// was cut), and the server closes. Without tty=1 the command runs to its
// end without a terminal, and the browser sends nothing but may close to
// give up waiting; with tty=1 it runs on a terminal (execTTYWS).
func (h *agentHandlers) execWS(w http.ResponseWriter, r *http.Request, ta *terminalAuth) error {
	q := r.URL.Query()
	req := api.ExecRequest{Command: q["command"], TimeoutSeconds: defaultExecTimeout}
	if len(req.Command) == 0 {
		return api.Invalid("command", "give the program and each argument as a command parameter (command=ls&command=-l)", "command is required")
	}
	if err := admission.ValidateArgs("command", req.Command); err != nil {
		return err
	}
	if tty := q.Get("tty"); tty != "" && tty != "0" {
		return h.execTTYWS(w, r, ta)
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxExecTimeout {
			return api.Invalid("timeoutSeconds", fmt.Sprintf("use 1 to %d", maxExecTimeout), "timeout %q is out of range", v)
		}
		req.TimeoutSeconds = n
	}
	_, target, err := h.runningInstance(r, ta.id)
	if err != nil {
		return err
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	ws, err := upgradeTerminal(w, r, ta)
	if err != nil {
		return err
	}
	defer ws.Close()
	// Reading sees the browser's close (and answers its pings); the
	// browser sends nothing else.
	go func() {
		defer cancel()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	out, err := h.agents.Exec(ctx, target, req)
	if err != nil {
		msg := err.Error()
		var ae *api.Error
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		writeWS(ws, websocket.TextMessage, mustJSON(map[string]string{"error": msg}))
		closeWS(ws, websocket.CloseInternalServerErr, "exec failed")
		return nil
	}
	for _, b := range [][]byte{out.Stdout, out.Stderr} {
		if len(b) > 0 && writeWS(ws, websocket.BinaryMessage, b) != nil {
			return nil
		}
	}
	writeWS(ws, websocket.TextMessage, mustJSON(struct {
		ExitCode  int  `json:"exitCode"`
		Truncated bool `json:"truncated,omitempty"`
	}{out.ExitCode, out.Truncated}))
	closeWS(ws, websocket.CloseNormalClosure, "")
	return nil
}

// runningInstance is placedInstance for exec rights, refusing an
// instance that is not running.
func (h *agentHandlers) runningInstance(r *http.Request, id *auth.Identity) (*api.Instance, agentproxy.Target, error) {
	in, target, err := h.placedInstance(r, id, auth.VerbExec)
	if err != nil {
		return nil, target, err
	}
	if in.Status.Phase != api.PhaseRunning {
		return nil, target, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("instance %q is %s, not Running", in.Metadata.Name, in.Status.Phase), Hint: "start it first"}
	}
	return in, target, nil
}

// bridgeEnds is what both terminal bridges share: the WebSocket and the
// stream, closed together once whichever side ends first, and one writer
// at a time on the WebSocket.
type bridgeEnds struct {
	ws     *websocket.Conn
	stream io.Closer
	once   sync.Once
	wmu    sync.Mutex
}

func newBridgeEnds(ws *websocket.Conn, stream io.Closer) *bridgeEnds {
	return &bridgeEnds{ws: ws, stream: stream}
}

// closeBoth closes the stream and the WebSocket, once.
func (e *bridgeEnds) closeBoth() {
	e.once.Do(func() {
		e.stream.Close()
		e.ws.Close()
	})
}

// write sends one message to the browser.
func (e *bridgeEnds) write(typ int, b []byte) error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	return writeWS(e.ws, typ, b)
}

// close sends the browser a close message with code and reason.
func (e *bridgeEnds) close(code int, reason string) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	closeWS(e.ws, code, reason)
}

// bridge copies a stream's bytes to binary messages and binary messages
// to the stream until either side ends or ctx does, then closes both.
func bridge(ctx context.Context, ws *websocket.Conn, stream io.ReadWriteCloser) {
	e := newBridgeEnds(ws, stream)
	closeBoth, write := e.closeBoth, e.write
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := stream.Read(buf)
			if n > 0 && write(websocket.BinaryMessage, buf[:n]) != nil {
				break
			}
			if err != nil {
				closeWS(ws, websocket.CloseNormalClosure, "the console ended")
				break
			}
		}
		closeBoth()
	}()
	pings := time.NewTicker(wsPingEvery)
	defer pings.Stop()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-pings.C:
				if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)) != nil {
					return
				}
			}
		}
	}()
	ws.SetReadDeadline(time.Now().Add(wsIdle))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsIdle)) })
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			break
		}
		ws.SetReadDeadline(time.Now().Add(wsIdle))
		if typ != websocket.BinaryMessage {
			continue // control messages: nothing to resize on a serial line
		}
		if _, err := stream.Write(data); err != nil {
			break
		}
	}
	closeBoth()
	<-done
}

// writeWS writes one message within wsWriteWait.
func writeWS(ws *websocket.Conn, typ int, b []byte) error {
	ws.SetWriteDeadline(time.Now().Add(wsWriteWait))
	return ws.WriteMessage(typ, b)
}

// closeWS sends a close message; the connection is closed by its owner.
func closeWS(ws *websocket.Conn, code int, reason string) {
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(wsWriteWait))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return b
}
