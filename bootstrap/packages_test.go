package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// scriptedHost is a Runner whose answers are scripted by the start of
// the command, recording every command it was asked to run.
type scriptedHost struct {
	answers map[string]string // command prefix → stdout
	fail    map[string]error  // command prefix → error
	ran     []string
}

func (h *scriptedHost) Run(_ context.Context, cmd string, _ io.Reader) (string, error) {
	h.ran = append(h.ran, cmd)
	for p, err := range h.fail {
		if strings.Contains(cmd, p) {
			return "", err
		}
	}
	for p, out := range h.answers {
		if strings.Contains(cmd, p) {
			return out, nil
		}
	}
	return "", nil
}

func (h *scriptedHost) Close() error { return nil }

// TestPackagesStep checks the packages step: nothing to do, missing
// packages named (check mode of the inventory), installed with apt, and
// a host without apt named with what it lacks.
func TestPackagesStep(t *testing.T) {
	installed := func(pkgs ...string) string {
		var b strings.Builder
		for _, p := range pkgs {
			b.WriteString(p + " ii \n")
		}
		return b.String()
	}
	all := Packages("amd64", []string{RoleServer}, nil, false)
	for _, tc := range []struct {
		name     string
		policy   string
		have     []string
		apt      bool
		aptFails bool
		wantOut  string
		wantErr  string
		wantApt  bool
	}{
		{name: "all there", policy: "install", have: all, apt: true, wantOut: "packages   unchanged"},
		{name: "missing, check only", policy: "check", apt: true, wantErr: "missing ca-certificates: install them (the inventory says packages: check)"},
		{name: "missing, installed", policy: "install", apt: true, wantOut: "packages   changed (ca-certificates)", wantApt: true},
		{name: "missing, no apt", policy: "install", apt: false, wantErr: "missing ca-certificates and there is no apt-get to install them"},
		{name: "missing, apt fails", policy: "install", apt: true, aptFails: true, wantErr: "install ca-certificates: no mirror", wantApt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := &scriptedHost{answers: map[string]string{"dpkg-query": installed(tc.have...)}, fail: map[string]error{}}
			if tc.aptFails {
				host.fail["'apt-get' 'install'"] = errors.New("no mirror")
			}
			var out bytes.Buffer
			b := &run{inv: &Inventory{Packages: tc.policy}, opts: Options{Out: &out}}
			n := &node{h: &Host{Name: "h1", Roles: []string{RoleServer}}, r: host, f: facts{arch: "amd64", apt: tc.apt}}
			err := b.packages(context.Background(), n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
			} else if err != nil || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("error %v, output %q; want %q", err, out.String(), tc.wantOut)
			}
			ranApt := strings.Contains(strings.Join(host.ran, "\n"), "'apt-get' 'install'")
			if ranApt != tc.wantApt {
				t.Errorf("apt-get install run: %v, want %v (%q)", ranApt, tc.wantApt, host.ran)
			}
		})
	}
}
