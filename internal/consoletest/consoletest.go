// Package consoletest fakes the console of an instance for the tests of
// the code that carries console streams (the API server's proxy, the
// agent client): the fake answers every line upper-cased, so that a test
// can tell its answer from an echo of what it sent.
package consoletest

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/upgrade"
)

// Serve accepts the request to upgrade to api.ConsoleProtocol and answers
// each line the caller sends upper-cased. It returns when the caller
// closes its side (detaches), or at once when the upgrade fails, which
// fails t.
func Serve(t testing.TB, w http.ResponseWriter) {
	conn, err := upgrade.Accept(w, api.ConsoleProtocol)
	if err != nil {
		t.Errorf("console accept: %v", err)
		return
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := conn.Write([]byte(strings.ToUpper(line))); err != nil {
			return
		}
	}
}

// Check sends lines over conn, a console Serve answers at the far end,
// and fails t unless each comes back upper-cased.
func Check(t testing.TB, conn io.ReadWriter) {
	t.Helper()
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
