package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// victimCloud is a cloud with a victim project full of objects and an
// attacker project next to it, as TestAdversaryCrossProject attacks it.
type victimCloud struct {
	*cloud
	hc               *http.Client
	victim, attacker tenant
	// secret is planted in the victim's env, user-data, logs, image and
	// descriptions; no answer to the attacker may contain it.
	secret string
	// objects are the API paths of the victim's objects, by plural.
	objects map[string]string
	// layer is the digest of the victim's private image's layer.
	layer string
	// leaks are strings no answer to the attacker may contain: the
	// secret, the victim objects' UIDs, its public key, its layer.
	leaks []string
	// before is the victim's objects as they were before the attacks.
	before snapshot
	// raw is the victim's objects as the admin reads them, for bodies.
	raw map[string][]byte
	// boxRaw is the attacker's own instance as it reads it.
	boxRaw []byte
	// startRev is the store's revision before the victim made anything.
	startRev string
}

// secretRootfs writes a one-file layer holding secret and returns its path.
func secretRootfs(t testing.TB, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/secret", Mode: 0o600, Size: int64(len(secret))})
	tw.Write([]byte(secret))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newVictimCloud starts a cloud with one host and builds the victim's
// project, each object made by the victim's own member, and the
// attacker's, with an instance and a floating IP of its own.
func newVictimCloud(t *testing.T) *victimCloud {
	t.Helper()
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	c.ouro("fip", "pool", "create", "ext", "--cidr", "192.0.2.0/24", "--range", "192.0.2.10-192.0.2.20")
	vc := &victimCloud{cloud: c, hc: c.httpClient(), secret: "victim-secret-" + randomSuffix(10)}
	vc.victim, vc.attacker = c.newTenant("victim"), c.newTenant("attacker")

	var projects api.List[api.Project]
	json.Unmarshal(do(t, vc.hc, c.url, c.admin, get("/v1/projects")).body, &projects)
	vc.startRev = projects.Metadata.ResourceVersion
	m := vc.victim.member
	c.mustAs(m, "keypair", "create", "vkey", "--project", "victim")
	c.mustAs(m, "image", "import", "secret-img", secretRootfs(t, vc.secret), "--project", "victim")
	c.mustAs(m, "network", "create", "vnet", "--cidr", "10.123.0.0/24", "--project", "victim")
	c.mustAs(m, "sg", "create", "vsg", "--description", vc.secret, "--project", "victim")
	c.mustAs(m, "sg", "rule", "add", "vsg", "--protocol", "tcp", "--port", "22", "--cidr", "10.0.0.0/8", "--project", "victim")
	c.mustAs(m, "fip", "allocate", "vfip", "--project", "victim")
	ud := filepath.Join(c.dir, "victim-user-data")
	if err := os.WriteFile(ud, []byte("#cloud-config\n# "+vc.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.mustAs(m, "instance", "create", "vm", "--project", "victim", "--image", "busybox", "--flavor", "tiny",
		"--key", "vkey", "--user-data", ud, "--label", "owner=victim", "--env", "TOKEN="+vc.secret,
		"--", "sh", "-c", "echo $TOKEN; exec sleep 3600")
	c.mustAs(m, "group", "create", "vgroup", "--project", "victim", "--image", "busybox", "--flavor", "tiny",
		"--count", "1", "--label", "owner=victim", "--", "sleep", "3600")
	c.waitPhase("victim", "vm", api.PhaseRunning)
	wait.ForDetail(t, 30*time.Second, "the victim's log", func() (bool, string) {
		out := c.ouro("instance", "logs", "vm", "--project", "victim")
		return strings.Contains(out, vc.secret), out
	})

	am := vc.attacker.member
	c.mustAs(am, "instance", "create", "box", "--project", "attacker", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	c.mustAs(am, "fip", "allocate", "afip", "--project", "attacker")
	c.waitPhase("attacker", "box", api.PhaseRunning)
	vc.boxRaw = do(t, vc.hc, c.url, am, get("/v1/projects/attacker/instances/box")).body

	base := "/v1/projects/victim/"
	vc.objects = map[string]string{
		"instances":      base + "instances/vm",
		"images":         base + "images/secret-img",
		"networks":       base + "networks/vnet",
		"securitygroups": base + "securitygroups/vsg",
		"floatingips":    base + "floatingips/vfip",
		"keypairs":       base + "keypairs/vkey",
		"instancegroups": base + "instancegroups/vgroup",
	}
	var events api.List[api.Event]
	r := do(t, vc.hc, c.url, c.admin, request{method: http.MethodGet, path: base + "events"})
	if err := json.Unmarshal(r.body, &events); err != nil || len(events.Items) == 0 {
		t.Fatalf("the victim has no events to attack: %v %s", err, r)
	}
	vc.objects["events"] = base + "events/" + events.Items[0].Metadata.Name

	paths := []string{"/v1/projects/victim", "/v1/users/victim-dev"}
	for _, p := range vc.objects {
		paths = append(paths, p)
	}
	vc.before = c.stableSnapshot(vc.hc, paths)
	vc.raw = map[string][]byte{}
	for _, p := range paths {
		vc.raw[p] = do(t, vc.hc, c.url, c.admin, get(p)).body
	}
	vc.leaks = []string{vc.secret}
	for p, raw := range vc.raw {
		var o struct {
			Metadata api.ObjectMeta `json:"metadata"`
		}
		json.Unmarshal(raw, &o)
		if o.Metadata.UID != "" {
			vc.leaks = append(vc.leaks, o.Metadata.UID)
		}
		if strings.Contains(p, "/keypairs/") {
			var kp api.KeyPair
			json.Unmarshal(raw, &kp)
			vc.leaks = append(vc.leaks, strings.Fields(kp.Spec.PublicKey)[1])
		}
		if strings.Contains(p, "/images/") {
			var img api.Image
			json.Unmarshal(raw, &img)
			if len(img.Spec.Layers) != 1 {
				t.Fatalf("secret-img has layers %+v", img.Spec.Layers)
			}
			vc.layer = img.Spec.Layers[0].Digest
		}
	}
	return vc
}

// probe is one request of an attack and the refusal it must get.
type probe struct {
	name  string
	token string
	req   request
	want  refusal
}

// run runs each probe as a subtest.
func (vc *victimCloud) run(t *testing.T, probes []probe, leaks []string) {
	t.Helper()
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			checkRefused(t, do(t, vc.hc, vc.url, p.token, p.req), p.want, leaks)
		})
	}
}

// withLabel returns the object JSON raw with a label added, as an update
// body.
func withLabel(t testing.TB, raw []byte) []byte {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	md := o["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels["pwned"] = "yes"
	md["labels"] = labels
	b, _ := json.Marshal(o)
	return b
}

// asNew returns a create body with raw's spec under another name, in
// project (or none).
func asNew(t testing.TB, raw []byte, name, project string) []byte {
	t.Helper()
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	md := map[string]string{"name": name}
	if project != "" {
		md["project"] = project
	}
	mdRaw, _ := json.Marshal(md)
	out := map[string]json.RawMessage{"metadata": mdRaw}
	if s, ok := o["spec"]; ok {
		out["spec"] = s
	}
	b, _ := json.Marshal(out)
	return b
}

func get(path string) request { return request{method: http.MethodGet, path: path} }
func del(path string) request { return request{method: http.MethodDelete, path: path} }
func post(path, body string) request {
	return request{method: http.MethodPost, path: path, body: []byte(body)}
}

// TestAdversaryCrossProject attacks the victim's project with the tokens
// of another project and with its own viewer's: every read, write, watch
// and action on every kind must be refused exactly, say nothing of the
// victim's data, and leave its objects byte for byte as they were.
func TestAdversaryCrossProject(t *testing.T) {
	vc := newVictimCloud(t)
	a, v := vc.attacker, vc.victim

	t.Run("kinds", func(t *testing.T) {
		for _, plural := range sortedKinds(vc.objects) {
			path := vc.objects[plural]
			raw := vc.raw[path]
			name := path[strings.LastIndex(path, "/")+1:]
			list := "/v1/projects/victim/" + plural
			var rv struct {
				Metadata api.ObjectMeta `json:"metadata"`
			}
			json.Unmarshal(raw, &rv)
			t.Run(plural, func(t *testing.T) {
				probes := []probe{
					{"get", a.member, get(path), notFound},
					{"get as attacker admin", a.admin, get(path), notFound},
					{"list", a.member, get(list), notFound},
					{"list with selector", a.member, get(list + "?labelSelector=owner%3Dvictim"), notFound},
					{"watch", a.member, get(list + "?watch=true"), notFound},
					{"watch from revision 1", a.member, get(list + "?watch=true&resourceVersion=1"), notFound},
					{"update", a.member, request{method: http.MethodPut, path: path, body: withLabel(t, raw)}, notFound},
					{"update status", a.member, request{method: http.MethodPut, path: path + "/status", body: raw}, notFound},
					{"delete", a.member, del(path), notFound},
					{"conditional delete", a.member, del(path + "?resourceVersion=" + rv.Metadata.ResourceVersion), notFound},
					{"create in victim", a.member, request{method: http.MethodPost, path: list, body: asNew(t, raw, "evil", "")}, notFound},
					{"create smuggled by metadata.project", a.member, request{method: http.MethodPost,
						path: "/v1/projects/attacker/" + plural, body: asNew(t, raw, "evil", "victim")}, invalid("metadata.project")},
				}
				vc.run(t, probes, vc.leaks)
				// The answer for an existing object is the answer for a
				// missing one: no existence oracle.
				t.Run("no existence oracle", func(t *testing.T) {
					got := do(t, vc.hc, vc.url, a.member, get(path))
					miss := do(t, vc.hc, vc.url, a.member, get(list+"/"+name+"x"))
					if got.status != miss.status || strings.ReplaceAll(string(miss.body), name+"x", name) != string(got.body) {
						t.Errorf("existing %s answers %s, a missing one %s", name, got, miss)
					}
				})
				for _, q := range []struct{ name, query string }{
					{"list all projects", ""},
					{"list all projects by label", "?labelSelector=owner%3Dvictim"},
				} {
					t.Run(q.name, func(t *testing.T) {
						r := do(t, vc.hc, vc.url, a.member, get("/v1/"+plural+q.query))
						if r.status != http.StatusOK {
							t.Fatalf("got %s, want 200 with only the attacker's objects", r)
						}
						if bytes.Contains(r.body, []byte(`"project":"victim"`)) {
							t.Errorf("the list shows victim objects: %s", tail(string(r.body), 600))
						}
						checkNoLeak(t, r.body, vc.leaks)
					})
				}
				t.Run("paged list of all projects", func(t *testing.T) {
					next := "/v1/" + plural + "?limit=1"
					for pages := 0; next != ""; pages++ {
						if pages > 200 {
							t.Fatalf("more than 200 pages")
						}
						r := do(t, vc.hc, vc.url, a.member, get(next))
						if r.status != http.StatusOK {
							t.Fatalf("page %d: got %s", pages, r)
						}
						if bytes.Contains(r.body, []byte(`"project":"victim"`)) {
							t.Errorf("page %d shows victim objects: %s", pages, tail(string(r.body), 600))
						}
						checkNoLeak(t, r.body, vc.leaks)
						var l struct {
							Metadata api.ListMeta `json:"metadata"`
						}
						json.Unmarshal(r.body, &l)
						next = ""
						if l.Metadata.Continue != "" {
							next = "/v1/" + plural + "?limit=1&continue=" + url.QueryEscape(l.Metadata.Continue)
						}
					}
				})
				// Continue tokens made by hand, pointing into the victim's
				// keys, read nothing of the victim's.
				for _, q := range []struct{ name, path, start string }{
					{"forged continue token across projects", "/v1/" + plural, "victim/"},
					{"forged continue token escaping the project", "/v1/projects/attacker/" + plural, "../victim/"},
					{"forged continue token with NUL", "/v1/projects/attacker/" + plural, "\x00"},
				} {
					t.Run(q.name, func(t *testing.T) {
						tok, _ := json.Marshal(map[string]any{"rev": 1, "start": q.start})
						r := do(t, vc.hc, vc.url, a.member, get(q.path+"?limit=100&continue="+base64.RawURLEncoding.EncodeToString(tok)))
						if r.status != http.StatusOK && r.status != http.StatusBadRequest && r.status != http.StatusGone {
							t.Errorf("got %s; want 200, 400 or 410", r)
						}
						if bytes.Contains(r.body, []byte(`"project":"victim"`)) {
							t.Errorf("the page shows victim objects: %s", tail(string(r.body), 600))
						}
						checkNoLeak(t, r.body, vc.leaks)
					})
				}
				for _, q := range []struct{ name, query string }{
					{"watch all projects", "?watch=true"},
					{"watch all projects from revision 1", "?watch=true&resourceVersion=1"},
					{"watch all projects by label", "?watch=true&labelSelector=owner%3Dvictim&resourceVersion=1"},
					{"watch all projects from before the victim's objects", "?watch=true&resourceVersion=" + vc.startRev},
					{"watch all projects by label from before the victim's objects", "?watch=true&labelSelector=owner%3Dvictim&resourceVersion=" + vc.startRev},
				} {
					t.Run(q.name, func(t *testing.T) {
						r, lines := watchLines(t, vc.hc, vc.url, a.member, "/v1/"+plural+q.query, time.Second)
						if r.status != http.StatusOK {
							t.Fatalf("got %s, want 200 with only the attacker's objects", r)
						}
						t.Logf("%d lines: %s", len(lines), tail(strings.Join(lines, " "), 300))
						all := []byte(strings.Join(lines, "\n"))
						if bytes.Contains(all, []byte(`"project":"victim"`)) {
							t.Errorf("the watch shows victim objects: %s", tail(string(all), 600))
						}
						checkNoLeak(t, all, vc.leaks)
					})
				}
			})
		}
	})

	vm := "/v1/projects/victim/instances/vm"
	t.Run("instance actions", func(t *testing.T) {
		exec := `{"command":["cat","/proc/1/environ"]}`
		vc.run(t, []probe{
			{"start", a.member, post(vm+"/start", ""), notFound},
			{"stop", a.member, post(vm+"/stop", ""), notFound},
			{"reboot", a.member, post(vm+"/reboot", ""), notFound},
			{"logs", a.member, get(vm + "/logs"), notFound},
			{"logs follow", a.member, get(vm + "/logs?follow=true&tail=100"), notFound},
			{"exec", a.member, post(vm+"/exec", exec), notFound},
			{"exec as attacker admin", a.admin, post(vm+"/exec", exec), notFound},
			{"console", a.member, request{method: http.MethodPost, path: vm + "/console",
				header: map[string]string{"Connection": "Upgrade", "Upgrade": api.ConsoleProtocol}}, notFound},
			{"logs of a missing instance", a.member, get("/v1/projects/victim/instances/nope/logs"), notFound},
		}, vc.leaks)
	})

	var sg api.SecurityGroup
	json.Unmarshal(vc.raw[vc.objects["securitygroups"]], &sg)
	t.Run("sub-resources", func(t *testing.T) {
		sgRules := "/v1/projects/victim/securitygroups/vsg/rules"
		vc.run(t, []probe{
			{"add rule", a.member, post(sgRules, `{"direction":"ingress","protocol":"all","cidr":"0.0.0.0/0"}`), notFound},
			{"delete rule", a.member, del(sgRules + "/" + sg.Spec.Rules[0].ID), notFound},
			{"associate victim fip", a.member, post("/v1/projects/victim/floatingips/vfip/associate", `{"instance":"vm"}`), notFound},
			{"disassociate victim fip", a.member, post("/v1/projects/victim/floatingips/vfip/disassociate", ""), notFound},
			{"associate own fip with victim instance", a.member,
				post("/v1/projects/attacker/floatingips/afip/associate", `{"instance":"vm"}`), invalid("instance")},
			{"move own instance into the victim's project", a.member, request{method: http.MethodPut, path: "/v1/projects/attacker/instances/box",
				body: []byte(strings.Replace(string(vc.boxRaw), `"project":"attacker"`, `"project":"victim"`, 1))}, invalid("metadata.project")},
			{"rename own instance to the victim's", a.member, request{method: http.MethodPut, path: "/v1/projects/attacker/instances/box",
				body: []byte(strings.Replace(string(vc.boxRaw), `"name":"box"`, `"name":"vm"`, 1))}, invalid("metadata.name")},
			{"source group of the victim", a.member, post("/v1/projects/attacker/securitygroups/default/rules",
				`{"direction":"ingress","protocol":"all","sourceGroup":"vsg"}`), invalid("rule.sourceGroup")},
			{"read victim project", a.member, get("/v1/projects/victim"), notFound},
			{"update victim project", a.admin, request{method: http.MethodPut, path: "/v1/projects/victim",
				body: vc.raw["/v1/projects/victim"]}, notFound},
			{"delete victim project", a.admin, del("/v1/projects/victim"), notFound},
			{"grant self a role in victim", a.admin, post("/v1/tokens", `{"user":"attacker-boss","project":"victim","role":"admin"}`), notFound},
			{"issue a token for the victim's user", a.admin, post("/v1/tokens", `{"user":"victim-dev","project":"attacker","role":"viewer"}`), forbidden403},
			{"read victim user", a.admin, get("/v1/users/victim-dev"), forbidden403},
		}, vc.leaks)
		t.Run("list all instances on the victim's host", func(t *testing.T) {
			r := do(t, vc.hc, vc.url, a.member, get("/v1/instances?host=host-1"))
			if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"name":"box"`)) {
				t.Fatalf("got %s; want 200 with the attacker's box", r)
			}
			if bytes.Contains(r.body, []byte(`"project":"victim"`)) {
				t.Errorf("the list shows victim instances: %s", tail(string(r.body), 600))
			}
			checkNoLeak(t, r.body, vc.leaks)
		})
	})

	t.Run("cross-project references", func(t *testing.T) {
		inst := func(name, extra string) string {
			return `{"metadata":{"name":"` + name + `"},"spec":{"image":"busybox","flavor":"tiny"` + extra + `}}`
		}
		ai := "/v1/projects/attacker/instances"
		vc.run(t, []probe{
			{"private image of the victim", a.member, post(ai, `{"metadata":{"name":"x1"},"spec":{"image":"victim/secret-img","flavor":"tiny"}}`), invalid("spec.image")},
			{"key pair of the victim", a.member, post(ai, inst("x2", `,"keyName":"vkey"`)), invalid("spec.keyName")},
			{"security group of the victim", a.member, post(ai, inst("x4", `,"networks":[{"network":"default","securityGroups":["vsg"]}]`)), invalid("spec.networks[0].securityGroups[0]")},
			{"network of the victim", a.member, post(ai, inst("x3", `,"networks":[{"network":"vnet"}]`)), invalid("spec.networks[0].network")},
			{"group template with the victim's image", a.member, post("/v1/projects/attacker/instancegroups",
				`{"metadata":{"name":"g1"},"spec":{"count":1,"template":{"image":"victim/secret-img","flavor":"tiny"}}}`), invalid("spec.template.image")},
		}, vc.leaks)
		// The victim's private image answers as a missing one does.
		t.Run("private image answers as a missing one", func(t *testing.T) {
			got := do(t, vc.hc, vc.url, a.member, post(ai, `{"metadata":{"name":"x1"},"spec":{"image":"victim/secret-img","flavor":"tiny"}}`))
			miss := do(t, vc.hc, vc.url, a.member, post(ai, `{"metadata":{"name":"x1"},"spec":{"image":"victim/secret-imh","flavor":"tiny"}}`))
			if strings.ReplaceAll(string(miss.body), "secret-imh", "secret-img") != string(got.body) || got.status != miss.status {
				t.Errorf("the victim's image answers %s, a missing one %s", got, miss)
			}
		})
	})

	t.Run("blobs", func(t *testing.T) {
		blob := "/v1/blobs/" + vc.layer
		missing := "/v1/blobs/sha256:" + strings.Repeat("0", 64)
		leaks := []string{vc.secret}
		for _, tc := range []struct {
			name, token string
			req         request
		}{
			{"GET as attacker member", a.member, get(blob)},
			{"GET as attacker viewer", a.viewer, get(blob)},
			{"GET a range as attacker member", a.member, request{method: http.MethodGet, path: blob, header: map[string]string{"Range": "bytes=0-1023"}}},
			{"HEAD as attacker member", a.member, request{method: http.MethodHead, path: blob}},
			{"HEAD as attacker viewer", a.viewer, request{method: http.MethodHead, path: blob}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := do(t, vc.hc, vc.url, tc.token, tc.req)
				tc.req.path = missing
				m := do(t, vc.hc, vc.url, tc.token, tc.req)
				if r.status != http.StatusNotFound && r.status != http.StatusForbidden {
					t.Errorf("got %d (%d bytes, ETag %q), want 404 or 403", r.status, len(r.body), r.header.Get("ETag"))
				}
				if r.status != m.status || r.header.Get("Content-Length") != m.header.Get("Content-Length") && tc.req.method == http.MethodHead {
					t.Errorf("the victim's blob answers %d (length %s), a missing one %d (length %s): existence confirmed",
						r.status, r.header.Get("Content-Length"), m.status, m.header.Get("Content-Length"))
				}
				if r.header.Get("ETag") != "" {
					t.Errorf("the answer carries the blob's ETag %q", r.header.Get("ETag"))
				}
				checkNoLeak(t, r.body, leaks)
			})
		}
		t.Run("the owner still reads it", func(t *testing.T) {
			if r := do(t, vc.hc, vc.url, v.member, get(blob)); r.status != http.StatusOK || !bytes.Contains(r.body, []byte(vc.secret)) {
				t.Errorf("the victim's member reading its own layer: %d", r.status)
			}
		})
		t.Run("overwrite with another body", func(t *testing.T) {
			r := do(t, vc.hc, vc.url, a.member, request{method: http.MethodPut, path: blob, ctype: "application/octet-stream", body: []byte("evil")})
			checkRefused(t, r, invalid("digest"), leaks)
			if r := do(t, vc.hc, vc.url, vc.admin, get(blob)); !bytes.Contains(r.body, []byte(vc.secret)) {
				t.Errorf("the blob changed: %s", r)
			}
		})
		// An image of the attacker's naming the victim's layer must be
		// refused as one naming a blob never uploaded.
		t.Run("image naming the victim's layer", func(t *testing.T) {
			img := func(name, digest string) string {
				return `{"metadata":{"name":"` + name + `"},"spec":{"format":"oci","layers":[{"digest":"` + digest +
					`","size":` + fmt.Sprint(layerSize(vc)) + `,"mediaType":"application/vnd.oci.image.layer.v1.tar"}],"config":{}}}`
			}
			r := do(t, vc.hc, vc.url, a.member, post("/v1/projects/attacker/images", img("stolen", vc.layer)))
			m := do(t, vc.hc, vc.url, a.member, post("/v1/projects/attacker/images", img("stolen", "sha256:"+strings.Repeat("0", 64))))
			t.Logf("the victim's layer: %s; a blob never uploaded: %s", r, m)
			if r.status < 400 || r.status != m.status || r.apiError() == nil || m.apiError() == nil || r.apiError().Field != m.apiError().Field {
				t.Errorf("the victim's layer answers %s; a blob never uploaded %s", r, m)
			}
		})
	})

	t.Run("victim viewer writes", func(t *testing.T) {
		raw := vc.raw[vm]
		vc.run(t, []probe{
			{"create instance", v.viewer, post("/v1/projects/victim/instances", `{"metadata":{"name":"v2"},"spec":{"image":"busybox","flavor":"tiny"}}`), forbidden403},
			{"update instance", v.viewer, request{method: http.MethodPut, path: vm, body: withLabel(t, raw)}, forbidden403},
			{"delete instance", v.viewer, del(vm), forbidden403},
			{"stop instance", v.viewer, post(vm+"/stop", ""), forbidden403},
			{"exec", v.viewer, post(vm+"/exec", `{"command":["id"]}`), forbidden403},
			{"add rule", v.viewer, post("/v1/projects/victim/securitygroups/vsg/rules", `{"direction":"ingress","protocol":"all","cidr":"0.0.0.0/0"}`), forbidden403},
			{"delete key pair", v.viewer, del(vc.objects["keypairs"]), forbidden403},
			{"delete image", v.viewer, del(vc.objects["images"]), forbidden403},
			{"associate fip", v.viewer, post("/v1/projects/victim/floatingips/vfip/associate", `{"instance":"vm"}`), forbidden403},
			{"scale group", v.viewer, request{method: http.MethodPut, path: vc.objects["instancegroups"], body: withLabel(t, vc.raw[vc.objects["instancegroups"]])}, forbidden403},
			{"grant a role", v.viewer, post("/v1/tokens", `{"user":"victim-auditor","project":"victim","role":"admin"}`), forbidden403},
			{"upload a blob", v.viewer, request{method: http.MethodPut, path: "/v1/blobs/sha256:" + strings.Repeat("1", 64), ctype: "application/octet-stream", body: []byte("x")}, forbidden403},
		}, nil)
	})

	t.Run("victim unchanged", func(t *testing.T) {
		vc.checkUnchanged(t, vc.hc, vc.before)
		if in, err := vc.instance("victim", "vm"); err != nil || in.Status.Phase != api.PhaseRunning {
			t.Errorf("the victim's instance after the attacks: %v %+v", err, in.Status)
		}
	})
}

// layerSize returns the size of the victim's layer.
func layerSize(vc *victimCloud) int64 {
	var img api.Image
	json.Unmarshal(vc.before[vc.objects["images"]], &img)
	return img.Spec.Layers[0].Size
}

// sortedKinds returns the keys of m in order.
func sortedKinds(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
