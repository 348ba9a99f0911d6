package apiserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/watchcache"
)

// watch decodes the resourceVersion a watch starts from and streams the
// changes of kind k that the caller may see (match) from the watch cache.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k *api.Kind, project, host string, sel api.Selector, match func(api.Object) bool) error {
	var fromRev int64
	if v := r.URL.Query().Get("resourceVersion"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return api.Invalid("resourceVersion", "use the resourceVersion of a list", "resourceVersion %q is not valid", truncate(v, 40))
		}
		fromRev = n
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	return s.watches.Watch(ctx, w, watchcache.Query{Kind: k, Project: project, Host: host, Selector: sel,
		Match: match, From: fromRev, Bookmark: s.cfg.BookmarkInterval})
}

// eventName returns a unique, time-ordered name for an Event.
func eventName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%016x%s", time.Now().UnixNano(), hex.EncodeToString(b))
}
