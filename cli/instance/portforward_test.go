package instance

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/cli/command"
)

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		local   string
		remote  int
		wantErr string
	}{
		{in: "22", local: "22", remote: 22},
		{in: "8080:80", local: "8080", remote: 80},
		{in: "0:80", local: "0", remote: 80},
		{in: "-:22", wantErr: "LOCAL \"-\""},
		{in: "ssh", wantErr: "REMOTE \"ssh\""},
		{in: "80:0", wantErr: "REMOTE \"0\""},
		{in: "80:65536", wantErr: "REMOTE \"65536\""},
		{in: "x:80", wantErr: "LOCAL \"x\""},
		{in: "70000:80", wantErr: "LOCAL \"70000\""},
		{in: "", wantErr: "REMOTE \"\""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			local, remote, err := parsePorts(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !command.IsUsageError(err) {
					t.Fatalf("parsePorts(%q) = %v, want a usage error naming %s", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || local != tc.local || remote != tc.remote {
				t.Fatalf("parsePorts(%q) = %q, %d, %v; want %q, %d", tc.in, local, remote, err, tc.local, tc.remote)
			}
		})
	}
}

func TestSSHArgv(t *testing.T) {
	o := &command.Options{}
	argv, _, err := sshArgv(o, "web-1", "debian", "/keys/id", 2222, []string{"uname", "-a"})
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	want := []string{"ssh", "-o", "ProxyCommand='" + self + "' '--project' 'default' 'instance' 'port-forward' 'web-1' '2222' '--stdio'",
		"-o", "HostKeyAlias=ouro-default-web-1", "-l", "debian", "-i", "/keys/id", "--", "web-1", "uname", "-a"}
	if strings.Join(argv, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("argv\n%q\nwant\n%q", argv, want)
	}

	for _, tc := range []struct {
		name, inst, user string
		port             int
		want             string
	}{
		{"name with a quote", "web'; rm -rf /", "root", 22, "NAME"},
		{"name that is an option", "-oProxyCommand=x", "root", 22, "NAME"},
		{"user that is an option", "web", "-oProxyCommand=x", 22, "--user"},
		{"user with a host", "web", "root@elsewhere", 22, "--user"},
		{"port 0", "web", "root", 0, "--port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := sshArgv(o, tc.inst, tc.user, "", tc.port, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("sshArgv: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestShellQuote runs the quoted words through a real shell and checks
// that each comes back as one word, unchanged.
func TestShellQuote(t *testing.T) {
	words := []string{"plain", "it's", "$(echo expanded)", "a b", "`x`", "\\", "'", ""}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	out, err := exec.Command("/bin/sh", "-c", `for w in `+strings.Join(quoted, " ")+`; do printf '%s\0' "$w"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if strings.Join(got, "|") != strings.Join(words, "|") {
		t.Errorf("the shell read %q, want %q", got, words)
	}
}
