package apiserver

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/client"
	"github.com/ouroboros-cloud/ouro/imageimport"
)

// TestImportSameContentInTwoProjects imports one image into two projects
// with the uploader, each by a member of its project alone: the second
// cannot see the first's blob, uploads it again and gets its image.
func TestImportSameContentInTwoProjects(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	e.project("b")
	data := []byte("the one layer both projects import")
	path := filepath.Join(t.TempDir(), "layer")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	img := &imageimport.Image{Layers: []imageimport.Blob{{Path: path,
		Blob: api.Blob{Digest: digestOf(data), Size: int64(len(data)), MediaType: api.MediaTypeLayerTar}}},
		Config: api.ImageConfig{Cmd: []string{"/bin/sh"}}}
	for _, project := range []string{"a", "b"} {
		tok := e.userToken("user-"+project, map[string]api.Role{project: api.RoleMember})
		c, err := client.New(client.Config{Server: e.ts.URL, Token: tok, HTTPClient: e.ts.Client()})
		if err != nil {
			t.Fatal(err)
		}
		var sent int64
		out, err := imageimport.Upload(context.Background(), c, project, "app", img, imageimport.UploadOptions{
			Progress: func(done, _ int64) { sent = done }})
		if err != nil {
			t.Fatalf("import into %s: %v", project, err)
		}
		if out.Metadata.Project != project || sent != int64(len(data)) {
			t.Errorf("import into %s: %+v, %d bytes done", project, out.Metadata, sent)
		}
		var got api.Image
		e.must(http.StatusOK, "GET", "/v1/projects/"+project+"/images/app", tok, nil).decode(t, &got)
		if got.Status.Phase != "Ready" {
			t.Errorf("image of %s: %+v", project, got.Status)
		}
		e.must(http.StatusOK, "GET", "/v1/blobs/"+digestOf(data), tok, nil)
	}
	// Publishing on import is a cluster admin's.
	tok := e.userToken("member", map[string]api.Role{"a": api.RoleMember})
	c, err := client.New(client.Config{Server: e.ts.URL, Token: tok, HTTPClient: e.ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = imageimport.Upload(context.Background(), c, "a", "pub", img, imageimport.UploadOptions{Public: true})
	if ae := (*api.Error)(nil); !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Field != "spec.public" {
		t.Errorf("public import by a member: %v", err)
	}
	e.must(http.StatusNotFound, "GET", "/v1/projects/a/images/pub", e.admin, nil)
}
