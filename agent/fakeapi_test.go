package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// testCA is a throwaway certificate authority made with crypto/x509.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serials struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serials.Lock()
	defer serials.Unlock()
	serials.n++
	return big.NewInt(serials.n + 1)
}

// sign issues a certificate for pub.
func (ca *testCA) sign(pub any, cn string, ips []net.IP, usage x509.ExtKeyUsage) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// clientCert issues a client certificate with common name cn.
func (ca *testCA) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.sign(&key.PublicKey, cn, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// watchEntry is one change of an instance, for watches.
type watchEntry struct {
	rev int64
	typ api.EventType
	obj api.Instance
}

// fakeAPI implements the few API routes the agent uses, in memory.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server
	ca  *testCA

	joinToken string

	mu        sync.Mutex
	rev       int64
	tokens    map[string]string // host token → host
	hosts     map[string]*api.Host
	instances map[string]*api.Instance // project/name
	images    map[string]*api.Image    // project/name
	events    []api.Event
	log       []watchEntry
	changed   chan struct{}
	joins     []api.JoinRequest
	beats     int
	lists     int
	failLists bool
	// conflicts makes that many instance status writes fail with 409.
	conflicts int
	// failBeats makes heartbeats fail with 503.
	failBeats bool
	// statusWrites counts accepted instance status writes.
	statusWrites int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		t:         t,
		ca:        newTestCA(t, "test-ca"),
		joinToken: "join-secret",
		tokens:    map[string]string{},
		hosts:     map[string]*api.Host{},
		instances: map[string]*api.Instance{},
		images:    map[string]*api.Image{},
		changed:   make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/hosts/join", f.join)
	mux.HandleFunc("GET /v1/whoami", f.auth(f.whoami))
	mux.HandleFunc("GET /v1/hosts/{name}", f.auth(f.getHost))
	mux.HandleFunc("PUT /v1/hosts/{name}/status", f.auth(f.putHostStatus))
	mux.HandleFunc("POST /v1/hosts/{name}/heartbeat", f.auth(f.heartbeat))
	mux.HandleFunc("GET /v1/instances", f.auth(f.listInstances))
	mux.HandleFunc("GET /v1/projects/{p}/instances/{name}", f.auth(f.getInstance))
	mux.HandleFunc("PUT /v1/projects/{p}/instances/{name}/status", f.auth(f.putInstanceStatus))
	mux.HandleFunc("GET /v1/projects/{p}/images/{name}", f.auth(f.getImage))
	mux.HandleFunc("POST /v1/projects/{p}/events", f.auth(f.postEvent))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) fail(w http.ResponseWriter, e *api.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: e})
}

func (f *fakeAPI) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// auth accepts only host tokens; the handler gets the host name.
func (f *fakeAPI) auth(h func(w http.ResponseWriter, r *http.Request, host string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		host, ok := f.tokens[tok]
		f.mu.Unlock()
		if !ok {
			f.fail(w, &api.Error{Status: 401, Code: api.CodeUnauthorized, Message: "bad token"})
			return
		}
		h(w, r, host)
	}
}

func (f *fakeAPI) join(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.joinToken {
		f.fail(w, &api.Error{Status: 401, Code: api.CodeUnauthorized, Message: "bad join token"})
		return
	}
	var req api.JoinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		f.fail(w, api.Invalid("", "", "%v", err))
		return
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil {
		f.fail(w, api.Invalid("csr", "", "no PEM"))
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		f.fail(w, api.Invalid("csr", "", "%v", err))
		return
	}
	certPEM, err := f.ca.sign(csr.PublicKey, csr.Subject.CommonName, []net.IP{net.ParseIP(req.Address)}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		f.fail(w, &api.Error{Status: 500, Code: api.CodeInternal, Message: err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok, h := range f.tokens {
		if h == req.Name {
			delete(f.tokens, tok) // the old credentials are revoked
		}
	}
	f.joins = append(f.joins, req)
	tok := fmt.Sprintf("host-token-%d", len(f.joins))
	f.tokens[tok] = req.Name
	h, ok := f.hosts[req.Name]
	if !ok {
		h = &api.Host{Kind: "Host", Metadata: api.ObjectMeta{Name: req.Name, UID: "host-uid"}}
		f.hosts[req.Name] = h
	}
	h.Spec.Taints = req.Taints
	h.Status.Phase = api.HostReady
	h.Status.Address = req.Address
	f.rev++
	h.Metadata.ResourceVersion = strconv.FormatInt(f.rev, 10)
	f.reply(w, api.JoinResponse{Host: *h, Token: tok, CACert: string(f.ca.certPEM), Certificate: string(certPEM)})
}

func (f *fakeAPI) whoami(w http.ResponseWriter, r *http.Request, host string) {
	f.reply(w, api.Whoami{Host: host})
}

func (f *fakeAPI) getHost(w http.ResponseWriter, r *http.Request, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[r.PathValue("name")]
	if !ok {
		f.fail(w, api.NotFound("host", r.PathValue("name")))
		return
	}
	f.reply(w, h)
}

func (f *fakeAPI) putHostStatus(w http.ResponseWriter, r *http.Request, host string) {
	var in api.Host
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.fail(w, api.Invalid("", "", "%v", err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[r.PathValue("name")]
	switch {
	case !ok:
		f.fail(w, api.NotFound("host", r.PathValue("name")))
	case host != h.Metadata.Name:
		f.fail(w, &api.Error{Status: 403, Code: api.CodeForbidden, Message: "other host"})
	case in.Metadata.ResourceVersion != h.Metadata.ResourceVersion:
		f.fail(w, api.Conflict("stale"))
	default:
		h.Status = in.Status
		f.rev++
		h.Metadata.ResourceVersion = strconv.FormatInt(f.rev, 10)
		f.reply(w, h)
	}
}

func (f *fakeAPI) heartbeat(w http.ResponseWriter, r *http.Request, host string) {
	if r.PathValue("name") != host {
		f.fail(w, &api.Error{Status: 403, Code: api.CodeForbidden, Message: "other host"})
		return
	}
	f.mu.Lock()
	f.beats++
	fail := f.failBeats
	f.mu.Unlock()
	if fail {
		f.fail(w, &api.Error{Status: 503, Code: api.CodeInternal, Message: "heartbeat broken (injected)"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeAPI) getImage(w http.ResponseWriter, r *http.Request, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[r.PathValue("p")+"/"+r.PathValue("name")]
	if !ok {
		f.fail(w, api.NotFound("image", r.PathValue("name")))
		return
	}
	f.reply(w, img)
}

func (f *fakeAPI) postEvent(w http.ResponseWriter, r *http.Request, _ string) {
	var ev api.Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		f.fail(w, api.Invalid("", "", "%v", err))
		return
	}
	if e := api.ValidateName("metadata.name", ev.Metadata.Name); e != nil {
		f.fail(w, e)
		return
	}
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	f.reply(w, ev)
}

func (f *fakeAPI) getInstance(w http.ResponseWriter, r *http.Request, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.instances[r.PathValue("p")+"/"+r.PathValue("name")]
	if !ok {
		f.fail(w, api.NotFound("instance", r.PathValue("name")))
		return
	}
	f.reply(w, inst)
}

func (f *fakeAPI) putInstanceStatus(w http.ResponseWriter, r *http.Request, host string) {
	var in api.Instance
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.fail(w, api.Invalid("", "", "%v", err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.PathValue("p") + "/" + r.PathValue("name")
	cur, ok := f.instances[key]
	switch {
	case !ok:
		f.fail(w, api.NotFound("instance", key))
		return
	case cur.Status.Host != host:
		f.fail(w, &api.Error{Status: 403, Code: api.CodeForbidden, Message: "not your instance"})
		return
	case f.conflicts > 0:
		f.conflicts--
		f.bumpLocked(key, func(*api.Instance) {}) // someone else wrote
		f.fail(w, api.Conflict("stale (injected)"))
		return
	case in.Metadata.ResourceVersion != cur.Metadata.ResourceVersion:
		f.fail(w, api.Conflict("stale"))
		return
	}
	f.statusWrites++
	obj := f.bumpLocked(key, func(i *api.Instance) { i.Status = in.Status })
	f.reply(w, obj)
	// The instance controller removes an instance reported Terminated.
	if obj.Metadata.DeletionTimestamp != nil && obj.Status.Phase == api.PhaseTerminated {
		f.removeLocked(key)
	}
}

func (f *fakeAPI) listInstances(w http.ResponseWriter, r *http.Request, host string) {
	q := r.URL.Query()
	if q.Get("host") != host {
		f.fail(w, &api.Error{Status: 403, Code: api.CodeForbidden, Message: "hosts list only their own instances"})
		return
	}
	if q.Get("watch") == "true" {
		f.watch(w, r, host, q.Get("resourceVersion"))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.failLists {
		f.fail(w, &api.Error{Status: 500, Code: api.CodeInternal, Message: "list broken (injected)"})
		return
	}
	l := api.List[api.Instance]{Kind: "InstanceList", Metadata: api.ListMeta{ResourceVersion: strconv.FormatInt(f.rev, 10)}}
	for _, inst := range f.instances {
		if inst.Status.Host == host {
			l.Items = append(l.Items, *inst)
		}
	}
	f.reply(w, l)
}

func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request, host, rv string) {
	flusher := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	enc := json.NewEncoder(w)
	f.mu.Lock()
	var batch []api.WatchEvent[api.Instance]
	next := len(f.log)
	if rv == "" {
		for _, inst := range f.instances {
			if inst.Status.Host == host {
				batch = append(batch, api.WatchEvent[api.Instance]{Type: api.Added, Object: *inst})
			}
		}
	} else {
		from, _ := strconv.ParseInt(rv, 10, 64)
		for next > 0 && f.log[next-1].rev > from {
			next--
		}
	}
	for {
		for ; next < len(f.log); next++ {
			e := f.log[next]
			if e.obj.Status.Host == host {
				batch = append(batch, api.WatchEvent[api.Instance]{Type: e.typ, Object: e.obj})
			}
		}
		ch := f.changed
		f.mu.Unlock()
		for _, ev := range batch {
			if err := enc.Encode(ev); err != nil {
				return
			}
		}
		batch = batch[:0]
		flusher.Flush()
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
}

// bumpLocked applies fn to the stored instance, gives it a new
// resourceVersion and records the change for watches.
func (f *fakeAPI) bumpLocked(key string, fn func(*api.Instance)) api.Instance {
	inst := f.instances[key]
	fn(inst)
	f.rev++
	inst.Metadata.ResourceVersion = strconv.FormatInt(f.rev, 10)
	f.recordLocked(api.Modified, *inst)
	return *cloneInstance(inst)
}

func (f *fakeAPI) recordLocked(typ api.EventType, obj api.Instance) {
	f.log = append(f.log, watchEntry{rev: f.rev, typ: typ, obj: *cloneInstance(&obj)})
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeAPI) removeLocked(key string) {
	inst := f.instances[key]
	delete(f.instances, key)
	f.rev++
	f.recordLocked(api.Deleted, *inst)
}

// addImage stores an image.
func (f *fakeAPI) addImage(project, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[project+"/"+name] = &api.Image{Kind: "Image",
		Metadata: api.ObjectMeta{Name: name, Project: project, UID: "img-" + name},
		Spec: api.ImageSpec{Format: api.FormatOCI, Layers: []api.Blob{{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1}},
			Config: api.ImageConfig{Cmd: []string{"/bin/sh"}}},
		Status: api.ImageStatus{Phase: "Ready", Driver: "fake"},
	}
}

// addInstance stores an instance placed on host (as the scheduler leaves
// it) and returns its key.
func (f *fakeAPI) addInstance(inst *api.Instance) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst = cloneInstance(inst)
	inst.Kind = "Instance"
	if inst.Metadata.Generation == 0 {
		inst.Metadata.Generation = 1
	}
	key := instanceKey(inst)
	f.instances[key] = inst
	f.rev++
	inst.Metadata.ResourceVersion = strconv.FormatInt(f.rev, 10)
	f.recordLocked(api.Added, *inst)
	return key
}

// updateSpec changes an instance as a user would (generation+1).
func (f *fakeAPI) updateSpec(key string, fn func(*api.Instance)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bumpLocked(key, func(i *api.Instance) {
		fn(i)
		i.Metadata.Generation++
	})
}

// get returns a copy of an instance, or nil.
func (f *fakeAPI) get(key string) *api.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.instances[key]
	if !ok {
		return nil
	}
	return cloneInstance(inst)
}

// eventReasons returns the reasons of the events about an instance.
func (f *fakeAPI) eventReasons(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		if e.Object.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func (f *fakeAPI) host(name string) api.Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.hosts[name]; ok {
		return *h
	}
	return api.Host{}
}

func (f *fakeAPI) counts() (joins, beats, lists int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.joins), f.beats, f.lists
}

// setFailBeats makes heartbeats fail (or work again).
func (f *fakeAPI) setFailBeats(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failBeats = fail
}

// setFailLists makes lists of instances fail (or work again).
func (f *fakeAPI) setFailLists(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failLists = fail
}

// writes returns the number of accepted instance status writes.
func (f *fakeAPI) writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusWrites
}

// events returns the events about an instance.
func (f *fakeAPI) eventsOf(name string) []api.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Event
	for _, e := range f.events {
		if e.Object.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// revokeHostTokens makes the server refuse the host's current token.
func (f *fakeAPI) revokeHostTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tok := range f.tokens {
		delete(f.tokens, tok)
	}
}
