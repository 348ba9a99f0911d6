package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ouroboros-cloud/ouro/driver"
)

func TestSecretsToFiles(t *testing.T) {
	dir := t.TempDir()
	vols := []attachedVolume{{Volume: driver.Volume{ID: "v1", Objects: []string{
		"secret,id=sec-vol-v1,data=QUJD,format=base64", "iothread,id=io1"}}}}
	got, err := secretsToFiles(dir, vols)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "secret-sec-vol-v1")
	if want := "secret,id=sec-vol-v1,file=" + file + ",format=base64"; got[0].Objects[0] != want {
		t.Fatalf("object %q, want %q", got[0].Objects[0], want)
	}
	if got[0].Objects[1] != "iothread,id=io1" {
		t.Fatalf("other object changed: %q", got[0].Objects[1])
	}
	if !strings.Contains(vols[0].Objects[0], "data=") {
		t.Fatal("the input was changed")
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(file); string(b) != "QUJD" {
		t.Fatalf("secret file holds %q", b)
	}
	if _, err := secretsToFiles(dir, []attachedVolume{{Volume: driver.Volume{ID: "v2",
		Objects: []string{"secret,id=../x,data=QUJD"}}}}); err == nil {
		t.Fatal("an id with a path was accepted")
	}
}

func TestObjectArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]any
	}{
		{"secret,id=s1,data=QUJD,format=base64", map[string]any{"qom-type": "secret", "id": "s1", "data": "QUJD", "format": "base64"}},
		{"qom-type=iothread,id=io1", map[string]any{"qom-type": "iothread", "id": "io1"}},
	} {
		got := objectArgs(tc.in)
		if len(got) != len(tc.want) {
			t.Fatalf("objectArgs(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Fatalf("objectArgs(%q) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}
