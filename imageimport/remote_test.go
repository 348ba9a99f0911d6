package imageimport

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startRegistry serves go-containerregistry's in-memory registry on
// loopback and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestPullFromRegistry(t *testing.T) {
	host := startRegistry(t)
	single := randomImage(t, hostArch, 2)
	other := randomImage(t, otherArch(), 1)
	multi := randomImage(t, hostArch, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch()}}},
		mutate.IndexAddendum{Add: multi, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: hostArch}}})
	if err := remote.Write(mustRef(t, host+"/app:single"), single); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(mustRef(t, host+"/app:multi"), idx); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, host+"/app:foreign"), other); err != nil {
		t.Fatal(err)
	}

	t.Run("image", func(t *testing.T) {
		work := t.TempDir()
		got, err := Load(context.Background(), host+"/app:single", work)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, work, got, wantLayers(t, single))
		if got.Source != host+"/app:single" {
			t.Errorf("source = %q, want the reference", got.Source)
		}
	})
	t.Run("index", func(t *testing.T) {
		work := t.TempDir()
		got, err := Load(context.Background(), host+"/app:multi", work)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, work, got, wantLayers(t, multi))
	})
	t.Run("other architecture", func(t *testing.T) {
		loadFails(t, host+"/app:foreign", "built for "+otherArch(), "this host is "+hostArch)
	})
	t.Run("missing tag", func(t *testing.T) {
		loadFails(t, host+"/app:nope", "registry "+host+" refused to serve")
	})
}

func TestPullRefusedByRegistry(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errors":[{"code":"DENIED","message":"go away"}]}`, http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	loadFails(t, host+"/app:1", "registry "+host+" refused to serve", "go away")
}
