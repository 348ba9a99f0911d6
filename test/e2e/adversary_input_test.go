package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ouroboros-cloud/ouro/api"
)

// attackerCloud is a cloud with one host, a victim and an attacker
// tenant, and an instance in each.
type attackerCloud struct {
	*cloud
	hc               *http.Client
	victim, attacker tenant
}

func newAttackerCloud(t *testing.T) *attackerCloud {
	t.Helper()
	c := newCloud(t)
	c.addAgent("host-1")
	c.importBusybox()
	ac := &attackerCloud{cloud: c, hc: c.httpClient()}
	ac.victim, ac.attacker = c.newTenant("victim"), c.newTenant("attacker")
	c.mustAs(ac.victim.member, "instance", "create", "vm", "--project", "victim", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	c.mustAs(ac.attacker.member, "instance", "create", "box", "--project", "attacker", "--image", "busybox", "--flavor", "tiny", "--", "sleep", "3600")
	c.waitPhase("victim", "vm", api.PhaseRunning)
	c.waitPhase("attacker", "box", api.PhaseRunning)
	return ac
}

// projectNames returns, by plural, the sorted names of the objects of a
// project as the cluster admin lists them.
func (ac *attackerCloud) projectNames(t testing.TB, project string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, plural := range []string{"instances", "images", "networks", "securitygroups", "keypairs", "floatingips", "instancegroups"} {
		r := do(t, ac.hc, ac.url, ac.admin, get("/v1/projects/"+project+"/"+plural))
		var l struct {
			Items []struct {
				Metadata api.ObjectMeta `json:"metadata"`
			} `json:"items"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &l) != nil {
			t.Fatalf("admin list %s of %s: %s", plural, project, r)
		}
		for _, it := range l.Items {
			out[plural] = append(out[plural], it.Metadata.Name)
		}
		sort.Strings(out[plural])
	}
	return out
}

// checkSameNames fails t if the projects' objects are not those of before.
func (ac *attackerCloud) checkSameNames(t testing.TB, before map[string]map[string][]string) {
	t.Helper()
	for project, want := range before {
		got := ac.projectNames(t, project)
		for plural := range want {
			if fmt.Sprint(got[plural]) != fmt.Sprint(want[plural]) {
				t.Errorf("%s of %s: %v, before %v", plural, project, got[plural], want[plural])
			}
		}
	}
}

func instanceBody(name, extra string) string {
	return `{"metadata":{"name":"` + name + `"},"spec":{"image":"busybox","flavor":"tiny"` + extra + `}}`
}

// TestAdversaryHostileInput sends an attacker's malformed names and bodies
// to the API: each must get the exact refusal, and nothing may change.
func TestAdversaryHostileInput(t *testing.T) {
	ac := newAttackerCloud(t)
	a := ac.attacker
	ai := "/v1/projects/attacker/instances"
	paths := []string{"/v1/projects/victim/instances/vm", "/v1/projects/attacker/instances/box", "/v1/projects/default/images/busybox"}
	before := ac.stableSnapshot(ac.hc, paths)
	names := map[string]map[string][]string{"victim": ac.projectNames(t, "victim"), "attacker": ac.projectNames(t, "attacker")}

	// An image of the attacker's made of the public busybox's layers.
	bb := do(t, ac.hc, ac.url, ac.admin, get("/v1/projects/default/images/busybox")).body
	publicImage := asNew(t, bb, "mine-public", "")
	c := ac.cloud
	c.mustAs(a.member, "image", "import", "private", secretRootfs(t, "attacker data"), "--project", "attacker")
	private := do(t, ac.hc, ac.url, ac.admin, get("/v1/projects/attacker/images/private")).body
	var privImg map[string]any
	json.Unmarshal(withLabel(t, private), &privImg)
	privImg["spec"].(map[string]any)["public"] = true
	madePublic, _ := json.Marshal(privImg)
	var pubImg map[string]any
	json.Unmarshal(publicImage, &pubImg)
	pubImg["spec"].(map[string]any)["public"] = true
	publicImage, _ = json.Marshal(pubImg)

	var host map[string]any
	json.Unmarshal(do(t, ac.hc, ac.url, ac.admin, get("/v1/hosts/host-1")).body, &host)
	host["spec"].(map[string]any)["unschedulable"] = true
	cordon, _ := json.Marshal(host)

	long := strings.Repeat("a", 100<<10)
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	probes := []probe{
		// Names.
		{"name with a path traversal", a.member, post(ai, instanceBody("../victim", "")), invalid("metadata.name")},
		{"name with a slash", a.member, post(ai, instanceBody("a/b", "")), invalid("metadata.name")},
		{"name of 64 bytes", a.member, post(ai, instanceBody(strings.Repeat("a", 64), "")), invalid("metadata.name")},
		{"name of 100 KiB", a.member, post(ai, instanceBody(long, "")), invalid("metadata.name")},
		{"unicode name", a.member, post(ai, instanceBody("ïnstance", "")), invalid("metadata.name")},
		{"homoglyph name", a.member, post(ai, instanceBody("v\u043c", "")), invalid("metadata.name")},
		{"right-to-left override in name", a.member, post(ai, instanceBody("a\u202eb", "")), invalid("metadata.name")},
		{"NUL byte in name", a.member, post(ai, instanceBody(`a\u0000b`, "")), invalid("metadata.name")},
		{"NUL byte in label", a.member, post(ai, `{"metadata":{"name":"l1","labels":{"a":"b\u0000c"}},"spec":{"image":"busybox","flavor":"tiny"}}`), invalid("metadata.labels.a")},
		{"NUL byte in command", a.member, post(ai, instanceBody("c1", `,"command":["sh\u0000","-c"]`)), invalid("spec.command[0]")},
		{"traversal in the path", a.member, get(ai + "/..%2F..%2Fvictim%2Finstances%2Fvm"), invalid("")},
		{"traversal in the project", a.member, get("/v1/projects/attacker%2F..%2Fvictim/instances/vm"), invalid("")},
		{"dot segments in the path", a.member, get("/v1/projects/attacker/../victim/instances/vm"), notFound},
		{"NUL byte in the path", a.member, get(ai + "/box%00"), invalid("")},
		{"name of 100 KiB in the path", a.member, get(ai + "/" + long), invalid("")},
		// Bodies.
		{"duplicated key", a.member, post(ai, `{"metadata":{"name":"dup"},"spec":{"image":"busybox","flavor":"tiny","flavor":"small"}}`), invalid("spec.flavor")},
		{"duplicated name", a.member, post(ai, `{"metadata":{"name":"dup1","name":"dup2"},"spec":{"image":"busybox","flavor":"tiny"}}`), invalid("metadata.name")},
		{"duplicated key in other case", a.member, post(ai, `{"metadata":{"name":"dup3"},"spec":{"image":"busybox","flavor":"tiny","Flavor":"small"}}`), invalid("spec.flavor")},
		{"text/plain", a.member, request{method: http.MethodPost, path: ai, ctype: "text/plain", body: []byte(instanceBody("ct1", ""))}, refusal{http.StatusUnsupportedMediaType, api.CodeUnsupportedMedia, ""}},
		{"no content type", a.member, request{method: http.MethodPost, path: ai, ctype: "-", body: []byte(instanceBody("ct2", ""))}, refusal{http.StatusUnsupportedMediaType, api.CodeUnsupportedMedia, ""}},
		{"form", a.member, request{method: http.MethodPost, path: ai, ctype: "application/x-www-form-urlencoded", body: []byte("metadata.name=ct3")}, refusal{http.StatusUnsupportedMediaType, api.CodeUnsupportedMedia, ""}},
		{"body of 2 MiB", a.member, post(ai, instanceBody("big", `,"userData":"`+strings.Repeat("A", 2<<20)+`"`)), refusal{http.StatusRequestEntityTooLarge, api.CodeTooLarge, ""}},
		{"body of 2 MiB without a length", a.member, request{method: http.MethodPost, path: ai, chunked: true,
			body: []byte(instanceBody("big2", `,"userData":"`+strings.Repeat("A", 2<<20)+`"`))}, refusal{http.StatusRequestEntityTooLarge, api.CodeTooLarge, ""}},
		{"nesting 100000 deep", a.member, post(ai, `{"metadata":{"name":"deep"},"spec":{"image":"busybox","flavor":"tiny","command":`+deep+`}}`), invalid("")},
		{"exec with a NUL byte", a.member, post(ai+"/box/exec", `{"command":["sh\u0000"]}`), invalid("command[0]")},
		// Roles.
		{"member imports a public image", a.member, request{method: http.MethodPost, path: "/v1/projects/attacker/images", body: publicImage}, forbidden403},
		{"member makes its image public", a.member, request{method: http.MethodPut, path: "/v1/projects/attacker/images/private", body: madePublic}, forbidden403},
		{"viewer creates an instance", a.viewer, post(ai, instanceBody("v1", "")), forbidden403},
		{"viewer deletes an instance", a.viewer, del(ai + "/box"), forbidden403},
		{"viewer stops an instance", a.viewer, post(ai+"/box/stop", ""), forbidden403},
		{"viewer reads logs", a.viewer, get(ai + "/box/logs"), forbidden403},
		{"viewer creates a network", a.viewer, post("/v1/projects/attacker/networks", `{"metadata":{"name":"n1"},"spec":{"cidr":"10.77.0.0/24"}}`), forbidden403},
		{"viewer creates a key pair", a.viewer, post("/v1/projects/attacker/keypairs", `{"metadata":{"name":"k1"},"spec":{"publicKey":"ssh-ed25519 AAAA"}}`), forbidden403},
		{"viewer creates a flavor", a.viewer, post("/v1/flavors", `{"metadata":{"name":"f1"},"spec":{"vcpus":64,"memoryMiB":1024,"diskGiB":1}}`), forbidden403},
		{"member creates a flavor", a.member, post("/v1/flavors", `{"metadata":{"name":"f1"},"spec":{"vcpus":64,"memoryMiB":1024,"diskGiB":1}}`), forbidden403},
		{"member cordons a host", a.member, request{method: http.MethodPut, path: "/v1/hosts/host-1", body: cordon}, forbidden403},
		{"member makes a join token", a.member, post("/v1/jointokens", `{}`), forbidden403},
		// Tokens.
		{"bogus token", "ouro_aaaaaaaaaaaa_bogus", get(ai), refusal{http.StatusUnauthorized, api.CodeUnauthorized, ""}},
		{"empty token", "", get(ai), refusal{http.StatusUnauthorized, api.CodeUnauthorized, ""}},
		{"token of another form", "Basic " + a.member, get(ai), refusal{http.StatusUnauthorized, api.CodeUnauthorized, ""}},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			checkRefused(t, do(t, ac.hc, ac.url, p.token, p.req), p.want, []string{"attacker data"})
		})
	}
	t.Run("member imports a public image with the CLI", func(t *testing.T) {
		_, errOut, err := c.as(a.member, "image", "import", "pub2", busyboxRootfs(t), "--public", "--project", "attacker")
		if err == nil || !strings.Contains(errOut, "may not") {
			t.Errorf("import --public as a member: %v, %q; want 403", err, errOut)
		}
	})
	t.Run("nothing changed", func(t *testing.T) {
		ac.checkUnchanged(t, ac.hc, before)
		names["attacker"]["images"] = append(names["attacker"]["images"], "private")
		sort.Strings(names["attacker"]["images"])
		ac.checkSameNames(t, names)
	})
}

// TestAdversaryRetryStorm fires parallel retries and floods of failing
// requests: retries with one Idempotency-Key make one instance, and
// failures change nothing.
func TestAdversaryRetryStorm(t *testing.T) {
	ac := newAttackerCloud(t)
	a, v := ac.attacker, ac.victim
	ai := "/v1/projects/attacker/instances"
	const n = 24

	// storm sends n requests at once, the i-th made by mk(i), and returns
	// the answers.
	storm := func(t *testing.T, token string, mk func(i int) request) []reply {
		out := make([]reply, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				out[i] = do(t, ac.hc, ac.url, token, mk(i))
			}()
		}
		close(start)
		wg.Wait()
		return out
	}
	count := func(rs []reply) map[string]int {
		m := map[string]int{}
		for _, r := range rs {
			k := fmt.Sprint(r.status)
			if e := r.apiError(); e != nil {
				k += " " + e.Code
			}
			m[k]++
		}
		return m
	}
	withKey := func(key, body string) request {
		return request{method: http.MethodPost, path: ai, body: []byte(body), header: map[string]string{"Idempotency-Key": key}}
	}

	t.Run("same key same request", func(t *testing.T) {
		rs := storm(t, a.member, func(int) request { return withKey("storm-1", instanceBody("storm", `,"command":["sleep","3600"]`)) })
		uids := map[string]bool{}
		for _, r := range rs {
			var in api.Instance
			if r.status != http.StatusCreated && r.status != http.StatusOK || json.Unmarshal(r.body, &in) != nil {
				t.Errorf("a retry got %s", r)
				continue
			}
			uids[in.Metadata.UID] = true
		}
		if c := count(rs); c["201"] != 1 || len(uids) != 1 {
			t.Errorf("answers %v with %d uids; want one 201, the rest 200, one uid", c, len(uids))
		}
	})
	t.Run("same key other requests", func(t *testing.T) {
		rs := storm(t, a.member, func(i int) request { return withKey("storm-2", instanceBody(fmt.Sprintf("storm-x%d", i), "")) })
		if c := count(rs); c["201"] != 1 || c["409 "+api.CodeIdempotencyMismatch] != n-1 {
			t.Errorf("answers %v; want one 201 and %d 409 %s", c, n-1, api.CodeIdempotencyMismatch)
		}
	})
	t.Run("same name other keys", func(t *testing.T) {
		rs := storm(t, a.member, func(i int) request { return withKey(fmt.Sprintf("storm-3-%d", i), instanceBody("storm-y", "")) })
		if c := count(rs); c["201"] != 1 || c["409 "+api.CodeAlreadyExists] != n-1 {
			t.Errorf("answers %v; want one 201 and %d 409 %s", c, n-1, api.CodeAlreadyExists)
		}
	})
	t.Run("victim's key is not the attacker's", func(t *testing.T) {
		vr := do(t, ac.hc, ac.url, v.member, request{method: http.MethodPost, path: "/v1/projects/victim/instances",
			body: []byte(instanceBody("vk", "")), header: map[string]string{"Idempotency-Key": "shared-key"}})
		ar := do(t, ac.hc, ac.url, a.member, withKey("shared-key", instanceBody("vk", "")))
		if vr.status != http.StatusCreated || ar.status != http.StatusCreated {
			t.Fatalf("victim got %s, attacker %s; want both 201", vr, ar)
		}
		var vi, ai api.Instance
		json.Unmarshal(vr.body, &vi)
		json.Unmarshal(ar.body, &ai)
		if vi.Metadata.UID == ai.Metadata.UID || ai.Metadata.Project != "attacker" {
			t.Errorf("the attacker's retry returned the victim's instance: %s", ar)
		}
	})
	t.Run("storm made one instance each", func(t *testing.T) {
		got := ac.projectNames(t, "attacker")["instances"]
		want := []string{"box", "storm", "storm-y", "vk"}
		var x int
		for _, name := range got {
			if strings.HasPrefix(name, "storm-x") {
				x++
			}
		}
		if x != 1 || len(got) != len(want)+1 {
			t.Errorf("attacker's instances %v; want %v and one storm-x", got, want)
		}
	})

	paths := []string{"/v1/projects/victim/instances/vm", "/v1/projects/attacker/instances/box"}
	before := ac.stableSnapshot(ac.hc, paths)
	names := map[string]map[string][]string{"victim": ac.projectNames(t, "victim"), "attacker": ac.projectNames(t, "attacker")}
	var box api.Instance
	json.Unmarshal(do(t, ac.hc, ac.url, ac.admin, get(ai+"/box")).body, &box)
	stale := withLabel(t, do(t, ac.hc, ac.url, ac.admin, get(ai+"/box")).body)
	stale = []byte(strings.Replace(string(stale), `"resourceVersion":"`+box.Metadata.ResourceVersion+`"`, `"resourceVersion":"1"`, 1))
	flood := []struct {
		name  string
		token string
		req   request
		want  refusal
	}{
		{"invalid creates", a.member, post(ai, instanceBody("Bad_Name", "")), invalid("metadata.name")},
		{"creates with a missing flavor", a.member, post(ai, `{"metadata":{"name":"f"},"spec":{"image":"busybox","flavor":"nope"}}`), invalid("spec.flavor")},
		{"deletes of missing instances", a.member, del(ai + "/nope"), notFound},
		{"stale updates", a.member, request{method: http.MethodPut, path: ai + "/box", body: stale}, refusal{http.StatusConflict, api.CodeConflict, ""}},
		{"deletes of the victim's instance", a.member, del("/v1/projects/victim/instances/vm"), notFound},
		{"stops of the victim's instance", a.member, post("/v1/projects/victim/instances/vm/stop", ""), notFound},
		{"viewer deletes", a.viewer, del(ai + "/box"), forbidden403},
		{"bogus tokens", "ouro_aaaaaaaaaaaa_bogus", del(ai + "/box"), refusal{http.StatusUnauthorized, api.CodeUnauthorized, ""}},
	}
	t.Run("flood", func(t *testing.T) {
		for _, f := range flood {
			t.Run(f.name, func(t *testing.T) {
				rs := storm(t, f.token, func(int) request { return f.req })
				for _, r := range rs {
					checkRefused(t, r, f.want, nil)
				}
			})
		}
	})
	t.Run("nothing changed", func(t *testing.T) {
		ac.checkUnchanged(t, ac.hc, before)
		ac.checkSameNames(t, names)
		if r := do(t, ac.hc, ac.url, a.member, post(ai, instanceBody("after-flood", ""))); r.status != http.StatusCreated {
			t.Errorf("a good create after the flood: %s", r)
		}
	})
}
