package blobrepl

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"regexp"
	"strconv"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/blobstore"
	"github.com/ouroboros-cloud/ouro/pki"
)

// PathPrefix starts the internal routes between servers:
// GET, HEAD and PUT PathPrefix+"sha256:<hex>".
const PathPrefix = "/internal/v1/blobs/"

// UploaderHeader names, on a push, the user who uploaded the blob.
const UploaderHeader = "Ouro-Uploader"

var digestRE = regexp.MustCompile(`^sha256:([0-9a-f]{64})$`)

// blobURL is the internal URL of a blob on peer p.
func blobURL(p peer, hexDigest string) string {
	return p.url + PathPrefix + "sha256:" + hexDigest
}

// push copies the blob to peer p. It is sent even when p holds it
// already: the push records its uploader there.
func (r *Replicator) push(ctx context.Context, p peer, user, hexDigest string) error {
	f, info, err := r.cfg.Store.Open(hexDigest)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, blobURL(p, hexDigest), io.NopCloser(f))
	if err != nil {
		return fmt.Errorf("push request: %w", err)
	}
	req.ContentLength = info.Size()
	if user != "" {
		req.Header.Set(UploaderHeader, user)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("push to %s: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("push to %s: %w", p.name, answer(resp))
	}
	return nil
}

// pull copies the blob from peer p into this server's store. A peer that
// does not hold it is an error matching fs.ErrNotExist.
func (r *Replicator) pull(ctx context.Context, p peer, hexDigest string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(p, hexDigest), nil)
	if err != nil {
		return fmt.Errorf("fetch request: %w", err)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("fetch from %s: %w", p.name, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return fmt.Errorf("fetch from %s: %w", p.name, fs.ErrNotExist)
	default:
		return fmt.Errorf("fetch from %s: %w", p.name, answer(resp))
	}
	n, err := r.cfg.Store.Put(hexDigest, resp.Body, resp.ContentLength)
	if err != nil {
		return fmt.Errorf("fetch from %s: %w", p.name, err)
	}
	r.log.Debug("fetched blob", "peer", p.name, "digest", hexDigest, "bytes", n)
	return nil
}

// answer turns a peer's unexpected answer into an error.
func answer(resp *http.Response) error {
	var body api.ErrorBody
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil && body.Error != nil {
		return fmt.Errorf("%s: %s", resp.Status, body.Error.Message)
	}
	return errors.New(resp.Status)
}

// Handler serves the internal routes under PathPrefix to the servers
// that present the cluster CA's server certificate, and refuses everyone
// else. It serves this server's own blobs only: a blob it lacks is 404,
// never fetched from another peer.
func (r *Replicator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathPrefix+"{digest}", r.serveGet)
	mux.HandleFunc("PUT "+PathPrefix+"{digest}", r.servePut)
	return r.onlyServers(mux)
}

// onlyServers lets through the callers whose TLS client certificate
// chains to the cluster CA, for client authentication, and names a
// server. The API's listener asks for a certificate without checking it
// (tokens are its usual credentials), so the chain is verified here.
func (r *Replicator) onlyServers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
			writeError(w, &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
				Message: "a server's client certificate is required", Hint: "only servers may call internal routes"})
			return
		}
		certs := req.TLS.PeerCertificates
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: r.cfg.CA.Pool(), Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			writeError(w, &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
				Message: "the client certificate is not the cluster CA's", Hint: "only servers may call internal routes"})
			return
		}
		if cn := certs[0].Subject.CommonName; cn != pki.ServerCN {
			writeError(w, &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
				Message: fmt.Sprintf("certificate %q may not call internal routes", cn), Hint: "only servers may"})
			return
		}
		next.ServeHTTP(w, req)
	})
}

// pathDigest returns the hex digest of the {digest} path value.
func pathDigest(w http.ResponseWriter, req *http.Request) (string, bool) {
	m := digestRE.FindStringSubmatch(req.PathValue("digest"))
	if m == nil {
		writeError(w, api.Invalid("digest", "write sha256:<64 lower-case hex digits>", "the digest is not valid"))
		return "", false
	}
	return m[1], true
}

// serveGet serves a blob this server holds (GET and HEAD).
func (r *Replicator) serveGet(w http.ResponseWriter, req *http.Request) {
	hx, ok := pathDigest(w, req)
	if !ok {
		return
	}
	f, info, err := r.cfg.Store.Open(hx)
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, api.NotFound("Blob", "sha256:"+hx))
		return
	}
	if err != nil {
		writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()})
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, req, "", info.ModTime(), f)
}

// servePut stores a blob a peer pushes, as the public upload does: it
// appears only if the body has the announced size (net/http refuses a
// shorter body; the limit cuts a longer one, which then fails the digest)
// and hashes to the digest. Pushing a blob again is answered the same.
func (r *Replicator) servePut(w http.ResponseWriter, req *http.Request) {
	hx, ok := pathDigest(w, req)
	if !ok {
		return
	}
	if req.ContentLength < 0 {
		writeError(w, &api.Error{Status: http.StatusLengthRequired, Code: api.CodeInvalid,
			Message: "a push must announce its size"})
		return
	}
	n, err := r.cfg.Store.Put(hx, io.LimitReader(req.Body, req.ContentLength), req.ContentLength)
	var (
		digest  *blobstore.DigestError
		readErr *blobstore.ReadError
		noSpace *blobstore.NoSpaceError
	)
	switch {
	case errors.As(err, &digest):
		writeError(w, api.Invalid("digest", "push the blob under its own digest", "%s", digest.Error()))
		return
	case errors.As(err, &readErr):
		writeError(w, api.Invalid("body", "push the whole blob", "%s", readErr.Error()))
		return
	case errors.As(err, &noSpace):
		writeError(w, &api.Error{Status: http.StatusInsufficientStorage, Code: api.CodeUnavailable, Message: noSpace.Error()})
		return
	case err != nil:
		writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()})
		return
	}
	if user := req.Header.Get(UploaderHeader); user != "" {
		r.cfg.Access.RecordUpload(user, hx)
	}
	writeJSON(w, http.StatusCreated, api.Blob{Digest: "sha256:" + hx, Size: n})
}

func writeError(w http.ResponseWriter, e *api.Error) {
	writeJSON(w, e.Status, api.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"Internal","message":"encode answer"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
