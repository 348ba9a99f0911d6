package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// layerOf returns the blob e.image uploads for project/name.
func layerOf(project, name string) string {
	return digestOf([]byte("layer of " + project + "/" + name))
}

// layerImage is an oci image of one uploaded layer.
func layerImage(name string, layer []byte, public bool) api.Image {
	return api.Image{Metadata: api.ObjectMeta{Name: name}, Spec: api.ImageSpec{Public: public, Format: api.FormatOCI,
		Layers: []api.Blob{{Digest: digestOf(layer), Size: int64(len(layer)), MediaType: api.MediaTypeLayerTar}}}}
}

func TestPublishingNeedsClusterAdmin(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	member := e.userToken("mia", map[string]api.Role{"a": api.RoleAdmin})
	layer := []byte("mia's layer")
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(layer), member, layer)

	// A project member (even a project admin) cannot publish at create.
	before := e.fake.revision()
	ae := e.must(http.StatusForbidden, "POST", "/v1/projects/a/images", member, layerImage("busybox", layer, true)).apiError()
	if ae.Field != "spec.public" || ae.Code != api.CodeForbidden || !strings.Contains(ae.Message, "cluster admins") || ae.Hint == "" {
		t.Errorf("public image by a member: %+v", ae)
	}
	if after := e.fake.revision(); after != before {
		t.Errorf("store changed: revision %d → %d", before, after)
	}
	e.must(http.StatusNotFound, "GET", "/v1/projects/a/images/busybox", e.admin, nil)

	// Nor by update.
	var img api.Image
	e.must(http.StatusCreated, "POST", "/v1/projects/a/images", member, layerImage("busybox", layer, false)).decode(t, &img)
	img.Spec.Public = true
	if ae := e.must(http.StatusForbidden, "PUT", "/v1/projects/a/images/busybox", member, img).apiError(); ae.Field != "spec.public" {
		t.Errorf("making an image public by a member: %+v", ae)
	}
	var cur api.Image
	e.must(http.StatusOK, "GET", "/v1/projects/a/images/busybox", member, nil).decode(t, &cur)
	if cur.Spec.Public {
		t.Error("image became public")
	}
	// Other changes of the image stay the member's.
	cur.Spec.Description = "the busybox of project a"
	e.must(http.StatusOK, "PUT", "/v1/projects/a/images/busybox", member, cur).decode(t, &cur)

	// A cluster admin publishes, at create and by update, and a member
	// may keep editing (not unpublish-and-republish) the public image.
	e.image("a", "shared", true)
	cur.Spec.Public = true
	e.must(http.StatusOK, "PUT", "/v1/projects/a/images/busybox", e.admin, cur).decode(t, &cur)
	cur.Spec.Description = "public busybox"
	e.must(http.StatusOK, "PUT", "/v1/projects/a/images/busybox", member, cur).decode(t, &cur)

	// One name is public in one project at most.
	e.project("b")
	other := []byte("another busybox")
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(other), e.admin, other)
	before = e.fake.revision()
	r := e.must(http.StatusConflict, "POST", "/v1/projects/b/images", e.admin, layerImage("busybox", other, true))
	if ae := r.apiError(); ae.Field != "spec.public" || !strings.Contains(ae.Message, "a/busybox") || ae.Hint == "" {
		t.Errorf("second public image of a name: %+v", ae)
	}
	if after := e.fake.revision(); after != before {
		t.Errorf("store changed: revision %d → %d", before, after)
	}
	// Once private, the name can be published elsewhere.
	cur.Spec.Public = false
	e.must(http.StatusOK, "PUT", "/v1/projects/a/images/busybox", e.admin, cur)
	e.must(http.StatusCreated, "POST", "/v1/projects/b/images", e.admin, layerImage("busybox", other, true))
	// A project's own image comes first, then the public one.
	in := e.instance(member, "a", "own", "busybox")
	if in.Spec.Image != "a/busybox" {
		t.Errorf("own image resolved to %q", in.Spec.Image)
	}
	e.project("c")
	in = e.instance(e.admin, "c", "pub", "busybox")
	if in.Spec.Image != "b/busybox" {
		t.Errorf("public image resolved to %q", in.Spec.Image)
	}
}

// notFoundAlike fails unless the answers to a hidden blob and to a missing
// one are the same but for the digest.
func notFoundAlike(t *testing.T, hidden, missing resp, hiddenDigest, missingDigest string) {
	t.Helper()
	if hidden.status != http.StatusNotFound || missing.status != http.StatusNotFound {
		t.Fatalf("status %d for a hidden blob, %d for a missing one, want 404", hidden.status, missing.status)
	}
	if got, want := string(hidden.body), strings.ReplaceAll(string(missing.body), missingDigest, hiddenDigest); got != want {
		t.Errorf("hidden blob answered %s, a missing one %s", got, want)
	}
	for _, h := range []string{"Content-Type", "Content-Length", "ETag", "Cache-Control"} {
		if hidden.header.Get(h) != missing.header.Get(h) {
			t.Errorf("header %s: %q for a hidden blob, %q for a missing one", h, hidden.header.Get(h), missing.header.Get(h))
		}
	}
}

func TestBlobReadsAreScopedToImages(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	e.project("b")
	e.project("p")
	e.image("a", "secret", false)
	e.image("p", "shared", true)
	orphan := []byte("nobody's yet")
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(orphan), e.admin, orphan)
	secret, shared, missing := layerOf("a", "secret"), layerOf("p", "shared"), digestOf([]byte("never uploaded"))

	viewerB := e.userToken("vic", map[string]api.Role{"b": api.RoleViewer})
	memberA := e.userToken("mia", map[string]api.Role{"a": api.RoleMember})
	e.instance(memberA, "a", "web", "secret")
	e.place("a", "web", "h1", api.PhaseRunning)
	h1, h2 := e.hostToken("h1"), e.hostToken("h2")

	tests := []struct {
		name   string
		token  string
		digest string
		want   bool
	}{
		{"viewer of another project, private image", viewerB, secret, false},
		{"member of the project", memberA, secret, true},
		{"viewer of another project, public image", viewerB, shared, true},
		{"member, public image", memberA, shared, true},
		{"user, blob of no image", memberA, digestOf(orphan), false},
		{"host running an instance of the image", h1, secret, true},
		{"host running nothing of it", h2, secret, false},
		{"host, public image it does not run", h1, shared, false},
		{"host, blob of no image", h1, digestOf(orphan), false},
		{"cluster admin, private image", e.admin, secret, true},
		{"cluster admin, blob of no image", e.admin, digestOf(orphan), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD"} {
				r := e.do(method, "/v1/blobs/"+tt.digest, tt.token, nil)
				if tt.want {
					if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Cache-Control"), "private") {
						t.Errorf("%s: status %d, Cache-Control %q, want 200, private: %s", method, r.status, r.header.Get("Cache-Control"), r.body)
					}
					continue
				}
				notFoundAlike(t, r, e.do(method, "/v1/blobs/"+missing, tt.token, nil), tt.digest, missing)
			}
		})
	}

	// Deleting the instance takes the host's access; deleting the image
	// everyone's but cluster admins'.
	if err := e.store.Delete(context.Background(), api.InstanceKind, "a", "web", ""); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusNotFound, "GET", "/v1/blobs/"+secret, h1, nil)
	e.must(http.StatusOK, "DELETE", "/v1/projects/a/images/secret", memberA, nil)
	e.must(http.StatusNotFound, "GET", "/v1/blobs/"+secret, memberA, nil)
}

func TestBlobReuploadByAnotherProject(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	e.project("b")
	e.image("a", "secret", false)
	layer := []byte("layer of a/secret")
	d := digestOf(layer)
	memberB := e.userToken("bob", map[string]api.Role{"b": api.RoleMember})

	// An image cannot refer to a blob its maker may not read and did not
	// upload: refused as a missing blob, whatever the size says.
	for _, size := range []int64{int64(len(layer)), 1} {
		img := layerImage("copy", layer, false)
		img.Spec.Layers[0].Size = size
		ae := e.must(http.StatusBadRequest, "POST", "/v1/projects/b/images", memberB, img).apiError()
		if ae.Field != "spec.layers[0].digest" || !strings.Contains(ae.Message, "was not uploaded") {
			t.Errorf("image of another project's blob (size %d): %+v", size, ae)
		}
	}

	// Uploading content the server holds answers as a first upload does.
	fresh := []byte("bob's own layer")
	first := e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(fresh), memberB, fresh)
	again := e.must(http.StatusCreated, "PUT", "/v1/blobs/"+d, memberB, layer)
	want := bytes.Replace(first.body, []byte(fmt.Sprintf(`"%s","size":%d`, digestOf(fresh), len(fresh))),
		[]byte(fmt.Sprintf(`"%s","size":%d`, d, len(layer))), 1)
	if !bytes.Equal(again.body, want) || again.header.Get("Content-Type") != first.header.Get("Content-Type") {
		t.Errorf("re-upload answered %s, a first upload %s", again.body, first.body)
	}
	// The upload alone does not make the blob readable...
	e.must(http.StatusNotFound, "GET", "/v1/blobs/"+d, memberB, nil)
	// ...but lets its uploader make an image of it, which does.
	e.must(http.StatusCreated, "POST", "/v1/projects/b/images", memberB, layerImage("copy", layer, false))
	r := e.must(http.StatusOK, "GET", "/v1/blobs/"+d, memberB, nil)
	if !bytes.Equal(r.body, layer) {
		t.Errorf("GET = %q", r.body)
	}
	// A wrong body under the digest is still refused.
	if ae := e.must(http.StatusBadRequest, "PUT", "/v1/blobs/"+d, memberB, []byte("not it")).apiError(); ae.Field != "digest" {
		t.Errorf("wrong content: %+v", ae)
	}
}

// TestBlobReadableRightAfterImageCreate reads blobs of images the moment
// their creates answer, many at once.
func TestBlobReadableRightAfterImageCreate(t *testing.T) {
	e := newEnv(t)
	e.project("a")
	member := e.userToken("mia", map[string]api.Role{"a": api.RoleMember})
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			layer := []byte(fmt.Sprintf("layer %d", i))
			put := e.do("PUT", "/v1/blobs/"+digestOf(layer), member, layer)
			post := e.do("POST", "/v1/projects/a/images", member, layerImage(fmt.Sprintf("img%d", i), layer, false))
			get := e.do("GET", "/v1/blobs/"+digestOf(layer), member, nil)
			if put.status != http.StatusCreated || post.status != http.StatusCreated || get.status != http.StatusOK {
				errs <- fmt.Sprintf("image %d: PUT %d, POST %d, GET %d: %s", i, put.status, post.status, get.status, get.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestPublishingAndBlobScopingOverEtcd runs the public name claim and the
// blob index over a real etcd, whose store lists in snapshots.
func TestPublishingAndBlobScopingOverEtcd(t *testing.T) {
	e := newEtcdEnv(t)
	for _, p := range []string{"a", "b", "c"} {
		e.project(p)
	}
	e.image("a", "shared", true)
	// A second public image of the name, at create and by update.
	layer := []byte("b's shared")
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(layer), e.admin, layer)
	if ae := e.must(http.StatusConflict, "POST", "/v1/projects/b/images", e.admin, layerImage("shared", layer, true)).apiError(); ae.Field != "spec.public" || !strings.Contains(ae.Message, "a/shared") {
		t.Errorf("second public image at create: %+v", ae)
	}
	var img api.Image
	e.must(http.StatusCreated, "POST", "/v1/projects/b/images", e.admin, layerImage("shared", layer, false)).decode(t, &img)
	img.Spec.Public = true
	if ae := e.must(http.StatusConflict, "PUT", "/v1/projects/b/images/shared", e.admin, img).apiError(); ae.Field != "spec.public" || !strings.Contains(ae.Message, "a/shared") {
		t.Errorf("second public image by update: %+v", ae)
	}
	// Deleting the public image frees its name.
	e.must(http.StatusOK, "DELETE", "/v1/projects/a/images/shared", e.admin, nil)
	e.must(http.StatusOK, "PUT", "/v1/projects/b/images/shared", e.admin, img)

	viewerC := e.userToken("vic", map[string]api.Role{"c": api.RoleViewer})
	memberA := e.userToken("mia", map[string]api.Role{"a": api.RoleMember})
	e.must(http.StatusOK, "GET", "/v1/blobs/"+digestOf(layer), viewerC, nil)
	own := []byte("a's own")
	e.must(http.StatusCreated, "PUT", "/v1/blobs/"+digestOf(own), memberA, own)
	e.must(http.StatusNotFound, "HEAD", "/v1/blobs/"+digestOf(own), memberA, nil)
	e.must(http.StatusCreated, "POST", "/v1/projects/a/images", memberA, layerImage("own", own, false))
	e.must(http.StatusOK, "HEAD", "/v1/blobs/"+digestOf(own), memberA, nil)
	e.must(http.StatusNotFound, "HEAD", "/v1/blobs/"+digestOf(own), viewerC, nil)
}
