package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ouroboros-cloud/ouro/admission"
	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// Commands on a terminal (`ouro instance exec -t`, the web console's
// terminal on a container) reach the instance's agent as POST .../exec
// upgraded to api.ExecTTYProtocol, whose stream carries ttyframe frames.
// The CLI asks the same of the server, which passes the frames through
// untouched; the browser's WebSocket gets them translated (execTTYWS).
// A terminal has no timeout: it lasts until the command ends or either
// side leaves, which hangs the terminal up.

// ttyCommand reads and checks the command and terminal size of a request
// for a terminal.
func ttyCommand(q url.Values) (argv []string, rows, cols uint16, err error) {
	argv = q["command"]
	if len(argv) == 0 {
		return nil, 0, 0, api.Invalid("command", "give the program and each argument as a command parameter (command=sh&command=-l)", "command is required")
	}
	if err := admission.ValidateArgs("command", argv); err != nil {
		return nil, 0, 0, err
	}
	rows, cols, err = ttyframe.QuerySize(q)
	if err != nil {
		return nil, 0, 0, api.Invalid("rows", "give the terminal's size as rows and cols (1 to 65535)", "%v", err)
	}
	return argv, rows, cols, nil
}

// execTTY runs a command on a terminal for the CLI: POST .../exec
// upgraded to api.ExecTTYProtocol, with the command and size in the
// query. Once the agent has switched, the server answers 101 and copies
// the frames both ways.
func (h *agentHandlers) execTTY(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	argv, rows, cols, err := ttyCommand(r.URL.Query())
	if err != nil {
		return err
	}
	_, target, err := h.runningInstance(r, id)
	if err != nil {
		return err
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	agent, err := h.agents.ExecTTY(ctx, target, argv, rows, cols)
	if err != nil {
		return err
	}
	caller, err := upgrade.Accept(w, api.ExecTTYProtocol)
	if err != nil {
		agent.Close()
		return api.Invalid("", "connect over HTTP/1.1 (`ouro instance exec -t` does)", "cannot switch this connection: %v", err)
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.status, sw.wroteHeader = http.StatusSwitchingProtocols, true
	}
	upgrade.Splice(ctx, caller, agent)
	return nil
}

// execTTYWS runs a command on a terminal for a browser (exec?ws=1&tty=1):
// binary messages carry the terminal's bytes both ways; a text message
// from the browser is a resize, {"rows":24,"cols":80}; when the command
// ends the server sends the text message {"exitCode":N} (or {"error":
// "..."}) and closes. Errors of the agent come the same way, after the
// switch.
func (h *agentHandlers) execTTYWS(w http.ResponseWriter, r *http.Request, ta *terminalAuth) error {
	argv, rows, cols, err := ttyCommand(r.URL.Query())
	if err != nil {
		return err
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
	// The agent's refusals (a program that is not there, a virtual
	// machine) reach the page as messages it can show.
	agent, err := h.agents.ExecTTY(ctx, target, argv, rows, cols)
	if err != nil {
		msg := err.Error()
		var ae *api.Error
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		writeWS(ws, websocket.TextMessage, mustJSON(map[string]string{"error": msg}))
		closeWS(ws, websocket.CloseInternalServerErr, "exec failed")
		ws.Close()
		return nil
	}
	bridgeTTY(ctx, ws, agent)
	return nil
}

// termResize is the browser's resize message.
type termResize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// bridgeTTY carries a terminal between a browser and an agent's stream of
// ttyframe frames until either ends or ctx does, then closes both.
func bridgeTTY(ctx context.Context, ws *websocket.Conn, stream io.ReadWriteCloser) {
	e := newBridgeEnds(ws, stream)
	closeBoth, write := e.closeBoth, e.write
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer closeBoth()
		fr := ttyframe.NewReader(stream)
		for {
			f, err := fr.Next()
			if err != nil {
				msg := "the agent's stream ended"
				if !errors.Is(err, io.EOF) {
					msg += ": " + err.Error()
				}
				write(websocket.TextMessage, mustJSON(map[string]string{"error": msg}))
				e.close(websocket.CloseInternalServerErr, "the terminal was lost")
				return
			}
			switch f.Type {
			case ttyframe.Data:
				if write(websocket.BinaryMessage, f.Payload) != nil {
					return
				}
			case ttyframe.Exit:
				code, _ := f.ExitCode()
				write(websocket.TextMessage, mustJSON(map[string]int{"exitCode": code}))
				e.close(websocket.CloseNormalClosure, "the command ended")
				return
			case ttyframe.Error:
				write(websocket.TextMessage, mustJSON(map[string]string{"error": string(f.Payload)}))
				e.close(websocket.CloseInternalServerErr, "the terminal was lost")
				return
			}
		}
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
	fw := ttyframe.NewWriter(stream)
	ws.SetReadDeadline(time.Now().Add(wsIdle))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsIdle)) })
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			break
		}
		ws.SetReadDeadline(time.Now().Add(wsIdle))
		if typ == websocket.BinaryMessage {
			if _, err := fw.Write(data); err != nil {
				break
			}
			continue
		}
		var rs termResize
		if json.Unmarshal(data, &rs) != nil || rs.Rows < 1 || rs.Cols < 1 || rs.Rows > 0xffff || rs.Cols > 0xffff {
			continue // not a resize: nothing else is sent as text
		}
		if err := fw.Resize(uint16(rs.Rows), uint16(rs.Cols)); err != nil {
			break
		}
	}
	// The browser left: hang the terminal up.
	closeBoth()
	<-done
}
