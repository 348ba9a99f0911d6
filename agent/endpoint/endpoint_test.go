package endpoint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

func TestEndpointLogs(t *testing.T) {
	d := newStubDriver(t)
	e := serve(t, d, "uid-web")
	ep, c := e.url, e.client
	path := d.LogPath("uid-web")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	get := func(query string) (int, string) {
		t.Helper()
		resp, err := c.Get(ep + "/v1/instances/uid-web/logs" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct{ query, want string }{
		{"", "one\ntwo\nthree\n"},
		{"?tail=2", "two\nthree\n"},
		{"?tail=0", ""},
		{"?tail=10&follow=false", "one\ntwo\nthree\n"},
	} {
		if code, got := get(tt.query); code != 200 || got != tt.want {
			t.Errorf("logs%s = %d %q, want 200 %q", tt.query, code, got, tt.want)
		}
	}
	if code, _ := get("?tail=x"); code != http.StatusBadRequest {
		t.Errorf("tail=x: status %d, want 400", code)
	}
	resp, err := c.Get(ep + "/v1/instances/uid-other/logs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unassigned uid: status %d, want 404", resp.StatusCode)
	}

	// Follow streams what is appended.
	resp, err = c.Get(ep + "/v1/instances/uid-web/logs?follow=true&tail=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || line != "three\n" {
		t.Fatalf("first followed line = %q, %v", line, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("four\n")
	f.Close()
	if line, err := r.ReadString('\n'); err != nil || line != "four\n" {
		t.Fatalf("appended line = %q, %v", line, err)
	}
}

func TestEndpointFollowWaitsForLogFile(t *testing.T) {
	d := newStubDriver(t)
	e := serve(t, d, "uid-web")
	ep, c := e.url, e.client
	resp, err := c.Get(ep + "/v1/instances/uid-web/logs?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if err := os.WriteFile(d.LogPath("uid-web"), []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("line = %q, %v", line, err)
	}
}

func TestEndpointExec(t *testing.T) {
	d := newStubDriver(t)
	d.execFn = func(argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
		switch argv[0] {
		case "cat":
			io.Copy(stdout, stdin)
			io.WriteString(stderr, "done")
			return 0, nil
		case "flood":
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for range 5 {
				stdout.Write(chunk)
			}
			return 0, nil
		}
		return 127, nil
	}
	e := serve(t, d, "uid-web")
	ep, c := e.url, e.client
	exec := func(req api.ExecRequest) (int, api.ExecResponse) {
		t.Helper()
		body, _ := json.Marshal(req)
		resp, err := c.Post(ep+"/v1/instances/uid-web/exec", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out api.ExecResponse
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, out
	}

	code, out := exec(api.ExecRequest{Command: []string{"cat"}, Stdin: []byte("ping")})
	if code != 200 || out.ExitCode != 0 || string(out.Stdout) != "ping" || string(out.Stderr) != "done" || out.Truncated {
		t.Errorf("cat: %d %+v", code, out)
	}
	code, out = exec(api.ExecRequest{Command: []string{"false-ish"}})
	if code != 200 || out.ExitCode != 127 {
		t.Errorf("exit code: %d %+v, want 127", code, out.ExitCode)
	}
	code, out = exec(api.ExecRequest{Command: []string{"flood"}})
	if code != 200 || len(out.Stdout) != MaxExecOutput || !out.Truncated {
		t.Errorf("flood: status %d, %d bytes, truncated %v; want %d bytes, truncated", code, len(out.Stdout), out.Truncated, MaxExecOutput)
	}
	for _, bad := range []api.ExecRequest{{}, {Command: []string{"cat"}, TimeoutSeconds: 3601}, {Command: []string{"cat"}, TimeoutSeconds: -1}} {
		if code, _ := exec(bad); code != http.StatusBadRequest {
			t.Errorf("exec %+v: status %d, want 400", bad, code)
		}
	}
	d.Stop(t.Context(), "uid-web", 0)
	if code, _ := exec(api.ExecRequest{Command: []string{"cat"}}); code != http.StatusConflict {
		t.Errorf("exec in a stopped instance: status %d, want 409", code)
	}
}

func TestTailOffset(t *testing.T) {
	for _, tt := range []struct {
		content string
		n       int
		want    string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 0, ""},
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 9, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\nc", 2, "b\nc"},
		{strings.Repeat("x", 70000) + "\nend\n", 1, "end\n"},
		{"\n\n", 1, "\n"},
	} {
		path := t.TempDir() + "/log"
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		off, err := tailOffset(f, tt.n)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.content[off:]; got != tt.want {
			t.Errorf("tail %d of %.20q = %q, want %q", tt.n, tt.content, got, tt.want)
		}
	}
}

func TestCappedBuffer(t *testing.T) {
	c := &cappedBuffer{max: 5}
	for _, s := range []string{"ab", "cd", "efg", "h"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if c.buf.String() != "abcde" || !c.truncated {
		t.Errorf("got %q truncated=%v, want abcde truncated", c.buf.String(), c.truncated)
	}
}
