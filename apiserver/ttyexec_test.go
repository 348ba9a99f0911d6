package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
	"github.com/ouroboros-cloud/ouro/ttyframe"
)

// serveFakeTTY is the fake agent's terminal: it says its command and
// size, answers each line typed upper-cased, says each new size, and
// ends with exit code 5 on "exit"; the command "missing" is refused. It
// returns when the terminal ends or the caller leaves, true if it served
// one.
func serveFakeTTY(t *testing.T, w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	if q.Get("command") == "missing" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: &api.Error{Code: api.CodeInvalid, Message: "the command could not start: no such file"}})
		return false
	}
	rows, cols, err := ttyframe.QuerySize(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	conn, err := upgrade.Accept(w, api.ExecTTYProtocol)
	if err != nil {
		t.Errorf("tty accept: %v", err)
		return false
	}
	defer conn.Close()
	fw, fr := ttyframe.NewWriter(conn), ttyframe.NewReader(conn)
	fmt.Fprintf(fw, "ready %s %dx%d\r\n", strings.Join(q["command"], " "), rows, cols)
	var line strings.Builder
	for {
		f, err := fr.Next()
		if err != nil {
			return true
		}
		switch f.Type {
		case ttyframe.Resize:
			r, c, _ := f.Size()
			fmt.Fprintf(fw, "resized %dx%d\r\n", r, c)
		case ttyframe.Data:
			for _, b := range f.Payload {
				if b != '\r' {
					line.WriteByte(b)
					continue
				}
				if line.String() == "exit" {
					fw.Exit(5)
					return true
				}
				fmt.Fprintf(fw, "%s\r\n", strings.ToUpper(line.String()))
				line.Reset()
			}
		}
	}
}

// TestTerminalExecTTY runs a command on a terminal through the exec
// WebSocket: keystrokes and resizes go to the agent's terminal, its
// output and exit code come back.
func TestTerminalExecTTY(t *testing.T) {
	e := newTerminalEnv(t)
	cookie, csrf := e.signIn("max", map[string]api.Role{"default": api.RoleMember})
	ws, resp, err := e.dial(ctrTTY, e.originHeader(cookie), TerminalProtocol, "csrf."+csrf)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out strings.Builder
	var end struct {
		ExitCode *int   `json:"exitCode"`
		Error    string `json:"error"`
	}
	expect := func(want string) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %q (have %q): %v", want, out.String(), err)
			}
			if typ != websocket.BinaryMessage {
				t.Fatalf("waiting for %q: text message %s", want, data)
			}
			out.Write(data)
		}
	}
	expect("ready sh -l 30x100\r\n")
	for _, m := range []struct {
		typ  int
		data string
	}{
		{websocket.BinaryMessage, "hel"},
		{websocket.TextMessage, `{"cols":120,"rows":40}`},
		{websocket.TextMessage, `{"cols":0,"rows":40}`}, // ignored
		{websocket.TextMessage, `not json`},             // ignored
		{websocket.BinaryMessage, "lo\r"},
	} {
		if err := ws.WriteMessage(m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	expect("resized 40x120\r\nHELLO\r\n")
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte("exit\r")); err != nil {
		t.Fatal(err)
	}
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("read: %v", err)
			}
			break
		}
		if typ == websocket.TextMessage {
			if err := json.Unmarshal(data, &end); err != nil {
				t.Fatalf("text message %q: %v", data, err)
			}
		}
	}
	if end.ExitCode == nil || *end.ExitCode != 5 || end.Error != "" {
		t.Errorf("end message %+v, want exit code 5", end)
	}
	<-e.detached

	// The agent's refusal comes as a message the page shows.
	ws, resp, err = e.dial(strings.Replace(ctrTTY, "command=sh&command=-l", "command=missing", 1), http.Header{"Authorization": {"Bearer " + e.admin}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if typ, data, err := ws.ReadMessage(); err != nil || typ != websocket.TextMessage || !strings.Contains(string(data), `"error":"the command could not start`) {
		t.Errorf("refused terminal: message %d %s, %v", typ, data, err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseInternalServerErr) {
		t.Errorf("refused terminal: close %v, want 1011", err)
	}

	// The browser leaving hangs the agent's terminal up.
	ws, resp, err = e.dial(ctrTTY, http.Header{"Authorization": {"Bearer " + e.admin}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	ws.Close()
	select {
	case <-e.detached:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the WebSocket did not end the agent's terminal")
	}
}

// TestExecTTYProxy runs a command on a terminal for the CLI: the frames
// pass through the server both ways, with exec's rights.
func TestExecTTYProxy(t *testing.T) {
	e := newTerminalEnv(t)
	cl := func(token string) *client.Client {
		c, err := client.New(client.Config{Server: e.ts.URL, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	viewer := cl(e.userToken("vera", map[string]api.Role{"default": api.RoleViewer}))
	if _, err := viewer.ExecTTY(ctx, "default", "ctr", []string{"sh"}, 24, 80); api.StatusOf(err) != http.StatusForbidden {
		t.Errorf("terminal as viewer: %v", err)
	}
	other := cl(e.userToken("olga", map[string]api.Role{"other": api.RoleMember}))
	if _, err := other.ExecTTY(ctx, "default", "ctr", []string{"sh"}, 24, 80); api.StatusOf(err) != http.StatusNotFound {
		t.Errorf("terminal as another project's member: %v", err)
	}
	member := cl(e.userToken("max", map[string]api.Role{"default": api.RoleMember}))
	if _, err := member.ExecTTY(ctx, "default", "ctr", nil, 24, 80); api.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("terminal without a command: %v", err)
	}
	conn, err := member.ExecTTY(ctx, "default", "ctr", []string{"top"}, 50, 132)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fw, fr := ttyframe.NewWriter(conn), ttyframe.NewReader(conn)
	fw.Resize(10, 20)
	io.WriteString(fw, "q\rexit\r")
	var out strings.Builder
	code := -1
	for {
		f, err := fr.Next()
		if err != nil {
			t.Fatalf("after %q: %v", out.String(), err)
		}
		if f.Type == ttyframe.Exit {
			code, _ = f.ExitCode()
			break
		}
		out.Write(f.Payload)
	}
	if want := "ready top 50x132\r\nresized 10x20\r\nQ\r\n"; out.String() != want || code != 5 {
		t.Errorf("terminal gave %q and exit code %d, want %q and 5", out.String(), code, want)
	}
}
