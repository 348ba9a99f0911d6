package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
)

// The fake API stores these kinds generically, as the real server does.
var fakeKinds = []*api.Kind{api.NetworkKind, api.SecurityGroupKind, api.FloatingIPKind,
	api.FloatingIPPoolKind, api.HostKind, api.KeyPairKind}

// serveObjects adds the generic routes of fakeKinds and the special
// routes of security group rules and floating IPs to mux.
func (f *fakeAPI) serveObjects(mux *http.ServeMux) {
	for _, k := range fakeKinds {
		base := "/v1/" + k.Plural
		if k.Namespaced {
			base = "/v1/projects/{p}/" + k.Plural
		}
		mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) { f.listObjects(w, r, k) })
		mux.HandleFunc("POST "+base, func(w http.ResponseWriter, r *http.Request) { f.createObject(w, r, k) })
		mux.HandleFunc("GET "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			obj := f.objects[k.Plural][r.PathValue("p")+"/"+r.PathValue("name")]
			f.mu.Unlock()
			if obj == nil {
				writeJSON(w, 404, api.ErrorBody{Error: api.NotFound(k.Name, r.PathValue("name"))})
				return
			}
			writeJSON(w, 200, obj)
		})
		mux.HandleFunc("DELETE "+base+"/{name}", func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			key := r.PathValue("p") + "/" + r.PathValue("name")
			obj := f.objects[k.Plural][key]
			delete(f.objects[k.Plural], key)
			f.mu.Unlock()
			if obj == nil {
				writeJSON(w, 404, api.ErrorBody{Error: api.NotFound(k.Name, r.PathValue("name"))})
				return
			}
			writeJSON(w, 200, obj)
		})
	}
	mux.HandleFunc("POST /v1/projects/{p}/securitygroups/{name}/rules", f.addRule)
	mux.HandleFunc("DELETE /v1/projects/{p}/securitygroups/{name}/rules/{id}", f.deleteRule)
	mux.HandleFunc("POST /v1/projects/{p}/floatingips/{name}/associate", f.associate)
	mux.HandleFunc("POST /v1/projects/{p}/floatingips/{name}/disassociate", f.associate)
}

// addObject stores obj as if created earlier.
func (f *fakeAPI) addObject(obj api.Object) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := obj.Meta()
	m.ResourceVersion = f.nextRV()
	if f.objects[obj.GetKind().Plural] == nil {
		f.objects[obj.GetKind().Plural] = map[string]api.Object{}
	}
	f.objects[obj.GetKind().Plural][m.Project+"/"+m.Name] = obj
}

// object returns a stored object, or nil.
func (f *fakeAPI) object(kind *api.Kind, project, name string) api.Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[kind.Plural][project+"/"+name]
}

func (f *fakeAPI) listObjects(w http.ResponseWriter, r *http.Request, k *api.Kind) {
	f.mu.Lock()
	var keys []string
	for key, obj := range f.objects[k.Plural] {
		if obj.Meta().Project == r.PathValue("p") {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	items := make([]api.Object, len(keys))
	for i, key := range keys {
		items[i] = f.objects[k.Plural][key]
	}
	f.mu.Unlock()
	writeJSON(w, 200, api.List[api.Object]{Kind: k.Name + "List", Items: items})
}

// createObject stores the object sent, filling in what the server sets:
// a VNI for networks, an address for floating IPs.
func (f *fakeAPI) createObject(w http.ResponseWriter, r *http.Request, k *api.Kind) {
	obj := k.New()
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "bad body: %v", err)})
		return
	}
	m := obj.Meta()
	m.Project = r.PathValue("p")
	m.UID = "uid-" + m.Name
	m.CreationTimestamp = time.Now()
	f.mu.Lock()
	if f.objects[k.Plural][m.Project+"/"+m.Name] != nil {
		f.mu.Unlock()
		writeJSON(w, 409, api.ErrorBody{Error: &api.Error{Code: api.CodeAlreadyExists, Message: k.Name + " exists"}})
		return
	}
	switch o := obj.(type) {
	case *api.Network:
		o.Status.VNI = 4096 + len(f.objects[k.Plural])
	case *api.FloatingIP:
		o.Status.Address = fmt.Sprintf("10.99.0.%d", 200+len(f.objects[k.Plural]))
	case *api.KeyPair:
		o.Status = api.KeyPairStatus{Type: strings.Fields(o.Spec.PublicKey + " ?")[0], Fingerprint: "SHA256:fake-" + m.Name}
	}
	f.mu.Unlock()
	f.addObject(obj)
	writeJSON(w, 201, obj)
}

func (f *fakeAPI) addRule(w http.ResponseWriter, r *http.Request) {
	var rule api.SecurityGroupRule
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rule); err != nil {
		writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "bad body: %v", err)})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.objects[api.SecurityGroupKind.Plural][r.PathValue("p")+"/"+r.PathValue("name")].(*api.SecurityGroup)
	if !ok {
		writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("security group", r.PathValue("name"))})
		return
	}
	rule.ID = fmt.Sprintf("r%d", len(g.Spec.Rules)+1)
	g.Spec.Rules = append(g.Spec.Rules, rule)
	writeJSON(w, 200, g)
}

func (f *fakeAPI) deleteRule(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.objects[api.SecurityGroupKind.Plural][r.PathValue("p")+"/"+r.PathValue("name")].(*api.SecurityGroup)
	if !ok {
		writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("security group", r.PathValue("name"))})
		return
	}
	for i, rule := range g.Spec.Rules {
		if rule.ID == r.PathValue("id") {
			g.Spec.Rules = append(g.Spec.Rules[:i], g.Spec.Rules[i+1:]...)
			writeJSON(w, 200, g)
			return
		}
	}
	writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("rule", r.PathValue("id"))})
}

// associate serves associate (body {"instance"}) and disassociate (no
// body).
func (f *fakeAPI) associate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Instance string `json:"instance"`
	}
	if r.ContentLength > 0 {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, 400, api.ErrorBody{Error: api.Invalid("", "", "bad body: %v", err)})
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fip, ok := f.objects[api.FloatingIPKind.Plural][r.PathValue("p")+"/"+r.PathValue("name")].(*api.FloatingIP)
	if !ok {
		writeJSON(w, 404, api.ErrorBody{Error: api.NotFound("floating IP", r.PathValue("name"))})
		return
	}
	fip.Spec.Instance = req.Instance
	fip.Status.InstanceIP, fip.Status.Host = "", ""
	if inst := f.instances[req.Instance]; inst != nil {
		if len(inst.Status.Interfaces) > 0 {
			fip.Status.InstanceIP = inst.Status.Interfaces[0].IP
		}
		fip.Status.Host = inst.Status.Host
	}
	writeJSON(w, 200, fip)
}
