package fence

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recorded reads the group member record left in dir.
func recorded(t *testing.T, dir string) []Member {
	t.Helper()
	r := NewRecord(dir)
	if err := r.Load(); err != nil {
		t.Fatalf("load the record: %v", err)
	}
	return r.List()
}

func TestRecordSurvivesANewAgent(t *testing.T) {
	dir := t.TempDir()
	r1 := NewRecord(dir)
	web := Member{UID: "uid-web", Driver: "container", Instance: "demo/web-1"}
	db := Member{UID: "uid-db", Driver: "vm", Instance: "demo/db-1"}
	gone := Member{UID: "uid-gone", Driver: "vm", Instance: "demo/db-0"}
	for _, m := range []Member{web, db, gone, web} {
		if err := r1.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	web.Driver = "vm" // the member was recreated by another driver
	if err := r1.Add(web); err != nil {
		t.Fatal(err)
	}
	if err := r1.Remove("uid-gone"); err != nil {
		t.Fatal(err)
	}
	if err := r1.Remove("uid-never"); err != nil {
		t.Fatal(err)
	}
	want := []Member{db, web} // sorted by uid

	r2 := NewRecord(dir)
	if got := r2.List(); len(got) != 0 {
		t.Fatalf("a new record knows %v before loading", got)
	}
	if err := r2.Load(); err != nil {
		t.Fatal(err)
	}
	if got := r2.List(); !slices.Equal(got, want) {
		t.Errorf("after a new record loaded the record: %v, want %v", got, want)
	}

	dropped, err := r2.Retain(func(m Member) bool { return m.Driver == "vm" && m.UID == "uid-db" })
	if err != nil || !slices.Equal(dropped, []Member{web}) {
		t.Errorf("retain dropped %v, %v; want web", dropped, err)
	}
	if got := recorded(t, dir); !slices.Equal(got, []Member{db}) {
		t.Errorf("on disk after retain: %v, want only db", got)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != MembersFile {
		t.Errorf("data dir holds %v, want only %s", ents, MembersFile)
	}
}

func TestRecordLoad(t *testing.T) {
	web := Member{UID: "uid-web", Driver: "container", Instance: "demo/web-1"}
	tests := []struct {
		name    string
		content string // "" leaves the file missing
		dir     bool   // a directory where the file should be
		want    []Member
		wantErr string
	}{
		{name: "missing"},
		{name: "empty set", content: `{"members":[]}`},
		{name: "one", content: `{"members":[{"uid":"uid-web","driver":"container","instance":"demo/web-1"}]}`, want: []Member{web}},
		{name: "corrupt", content: `{"members":[{"uid":"uid-w`, wantErr: "corrupt"},
		{name: "unreadable", dir: true, wantErr: "read group member record"},
		{name: "entry without driver", content: `{"members":[{"uid":"uid-x"},{"uid":"uid-web","driver":"container","instance":"demo/web-1"}]}`,
			want: []Member{web}, wantErr: "without uid or driver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, MembersFile)
			r := NewRecord(dir)
			// What is in memory before load must not survive it.
			if err := r.Add(Member{UID: "uid-stale", Driver: "vm"}); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.dir:
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			case tt.content != "":
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := r.Load()
			if tt.wantErr == "" && err != nil {
				t.Errorf("load: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("load error %v, want one saying %q", err, tt.wantErr)
			}
			if got := r.List(); !slices.Equal(got, tt.want) {
				t.Errorf("after load: %v, want %v", got, tt.want)
			}
		})
	}
}
