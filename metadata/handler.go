package metadata

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IMDSv2 headers and bounds, as EC2 has them.
const (
	TokenHeader    = "X-Aws-Ec2-Metadata-Token"
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	MaxTokenTTL    = 21600
)

// Versions lists what GET / answers; every YYYY-MM-DD version is served.
var Versions = []string{"1.0", "2009-04-04", "latest"}

var dateVersion = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// Handler serves the metadata of the instances of one network. It keeps
// no state per request: tokens carry their expiry and are signed with a
// key made when the handler is.
type Handler struct {
	lookup Lookup
	key    []byte
	now    func() time.Time
}

// NewHandler returns a handler answering each caller with the instance
// lookup finds for its address.
func NewHandler(lookup Lookup) *Handler {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return &Handler{lookup: lookup, key: key, now: time.Now}
}

// ServeHTTP answers one request of an instance.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "cannot tell who is asking", http.StatusForbidden)
		return
	}
	inst, ok := h.lookup.Instance(ap.Addr().Unmap())
	if !ok {
		http.Error(w, fmt.Sprintf("no instance of this network has address %s on this host", ap.Addr().Unmap()), http.StatusForbidden)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) == 1 && parts[0] == "" {
		h.read(w, r, inst, func() (string, bool) { return strings.Join(Versions, "\n"), true })
		return
	}
	if v := parts[0]; v != "latest" && !dateVersion.MatchString(v) {
		http.NotFound(w, r)
		return
	}
	rest := strings.Join(parts[1:], "/")
	switch {
	case rest == "api/token":
		h.token(w, r, inst)
	case rest == "" || rest == "/":
		h.read(w, r, inst, func() (string, bool) {
			if inst.UserData != "" {
				return "meta-data\nuser-data", true
			}
			return "meta-data", true
		})
	case rest == "user-data":
		h.read(w, r, inst, func() (string, bool) { return inst.UserData, inst.UserData != "" })
	case rest == "meta-data" || strings.HasPrefix(rest, "meta-data/"):
		path := strings.TrimPrefix(strings.TrimPrefix(rest, "meta-data"), "/")
		h.read(w, r, inst, func() (string, bool) { return metaTree(inst).find(path) })
	default:
		http.NotFound(w, r)
	}
}

// read answers a GET or HEAD with what get returns, 404 when it finds
// nothing, 401 when a token is given and is not valid for the caller.
func (h *Handler) read(w http.ResponseWriter, r *http.Request, inst *Instance, get func() (string, bool)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	if tok := r.Header.Get(TokenHeader); tok != "" && !h.validToken(tok, inst.ID) {
		http.Error(w, "the metadata token is not valid or has expired", http.StatusUnauthorized)
		return
	}
	body, ok := get()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write([]byte(body))
}

// token answers PUT /latest/api/token with a session token for the
// caller, valid for the seconds the TTL header asks.
func (h *Handler) token(w http.ResponseWriter, r *http.Request, inst *Instance) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, "use PUT", http.StatusMethodNotAllowed)
		return
	}
	// As EC2 does: a request that went through a proxy is refused, so a
	// proxy on the instance cannot hand tokens to others.
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "requests through a proxy may not get tokens", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(TokenTTLHeader))
	if err != nil || ttl < 1 || ttl > MaxTokenTTL {
		http.Error(w, fmt.Sprintf("header %s must be 1 to %d seconds", TokenTTLHeader, MaxTokenTTL), http.StatusBadRequest)
		return
	}
	expiry := h.now().Add(time.Duration(ttl) * time.Second).Unix()
	tok := h.sign(inst.ID, expiry)
	w.Header().Set(TokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(tok))
}

// sign makes a token for instance id that expires at expiry (Unix
// seconds): the expiry and a MAC of it and the instance ID.
func (h *Handler) sign(id string, expiry int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(expiry))
	m := hmac.New(sha256.New, h.key)
	m.Write(b[:])
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)...))
}

// validToken reports whether tok was made for instance id and has not
// expired.
func (h *Handler) validToken(tok, id string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	expiry := int64(binary.BigEndian.Uint64(raw[:8]))
	if h.now().Unix() >= expiry {
		return false
	}
	return hmac.Equal([]byte(h.sign(id, expiry)), []byte(tok))
}

// node is a piece of the meta-data tree: a value, or a directory whose
// listing shows each child's label (its name, or "0=name" for keys).
type node struct {
	value    string
	children []child
}

type child struct {
	name, label string
	n           *node
}

func leaf(v string) *node { return &node{value: v} }

func (n *node) add(name string, c *node) { n.addLabel(name, name, c) }

func (n *node) addLabel(name, label string, c *node) {
	if c.children != nil {
		label += "/"
	}
	n.children = append(n.children, child{name: name, label: label, n: c})
}

// find returns the value or listing at path ("" is n itself). A trailing
// slash is allowed after directories only.
func (n *node) find(path string) (string, bool) {
	cur := n
	dir := strings.HasSuffix(path, "/")
	path = strings.TrimSuffix(path, "/")
	if path != "" {
		for _, seg := range strings.Split(path, "/") {
			var next *node
			for _, c := range cur.children {
				if c.name == seg {
					next = c.n
					break
				}
			}
			if next == nil {
				return "", false
			}
			cur = next
		}
	}
	if cur.children == nil {
		return cur.value, !dir
	}
	labels := make([]string, len(cur.children))
	for i, c := range cur.children {
		labels[i] = c.label
	}
	return strings.Join(labels, "\n"), true
}

// metaTree builds the meta-data tree of an instance.
func metaTree(inst *Instance) *node {
	root := &node{children: []child{}}
	root.add("hostname", leaf(inst.Name))
	root.add("instance-id", leaf(inst.ID))
	if inst.InstanceType != "" {
		root.add("instance-type", leaf(inst.InstanceType))
	}
	root.add("local-hostname", leaf(inst.Name))
	root.add("local-ipv4", leaf(inst.LocalIPv4))
	if inst.MAC != "" {
		root.add("mac", leaf(inst.MAC))
	}
	placement := &node{children: []child{}}
	placement.add("availability-zone", leaf(inst.Zone))
	root.add("placement", placement)
	if inst.PublicIPv4 != "" {
		root.add("public-ipv4", leaf(inst.PublicIPv4))
	}
	if len(inst.PublicKeys) > 0 {
		keys := &node{children: []child{}}
		for i, k := range inst.PublicKeys {
			name := inst.KeyName
			if name == "" || i > 0 {
				name = fmt.Sprintf("key-%d", i)
			}
			dir := &node{children: []child{}}
			dir.add("openssh-key", leaf(k))
			idx := strconv.Itoa(i)
			keys.addLabel(idx, idx+"="+name, dir)
		}
		// A key's directory is listed as "0=name", not "0=name/".
		for i := range keys.children {
			keys.children[i].label = strings.TrimSuffix(keys.children[i].label, "/")
		}
		root.add("public-keys", keys)
	}
	return root
}
