package browsertest

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Transfer is one response as it crossed the network.
type Transfer struct {
	// Path is the URL's path.
	Path string
	// Encoding is the response's Content-Encoding ("" for none).
	Encoding string
	// Bytes is what the browser received for it: headers and the
	// (compressed) body.
	Bytes int64
}

// Transfers records the responses a page loads, from the browser's
// network events.
type Transfers struct {
	mu       sync.Mutex
	pending  map[network.RequestID]Transfer
	finished []Transfer
}

// RecordTransfers enables the page's network events, turns its cache
// off (every load is a first load) and records every response that
// finishes loading from now on.
func (p *Page) RecordTransfers() *Transfers {
	p.tb.Helper()
	tr := &Transfers{pending: map[network.RequestID]Transfer{}}
	err := chromedp.Listen(p.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventResponseReceived:
			t := Transfer{}
			if u, err := url.Parse(ev.Response.URL); err == nil {
				t.Path = u.Path
			}
			for k, v := range ev.Response.Headers {
				if strings.EqualFold(k, "Content-Encoding") {
					t.Encoding, _ = v.(string)
				}
			}
			tr.mu.Lock()
			tr.pending[ev.RequestID] = t
			tr.mu.Unlock()
		case *network.EventLoadingFinished:
			tr.mu.Lock()
			if t, ok := tr.pending[ev.RequestID]; ok {
				t.Bytes = int64(ev.EncodedDataLength)
				tr.finished = append(tr.finished, t)
				delete(tr.pending, ev.RequestID)
			}
			tr.mu.Unlock()
		}
	})
	if err != nil {
		p.tb.Fatalf("browser: listen: %v", err)
	}
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		p.tb.Fatalf("browser: enable network events: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		p.tb.Fatalf("browser: disable the cache: %v", err)
	}
	return tr
}

// List returns the finished responses, sorted by path.
func (tr *Transfers) List() []Transfer {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := append([]Transfer(nil), tr.finished...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Sum returns the bytes of the finished responses whose path keep
// accepts.
func (tr *Transfers) Sum(keep func(path string) bool) int64 {
	var n int64
	for _, t := range tr.List() {
		if keep(t.Path) {
			n += t.Bytes
		}
	}
	return n
}

// OnNewDocument evaluates js in every document the page loads from now
// on, before the document's own scripts.
func (p *Page) OnNewDocument(js string) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js}); err != nil {
		p.tb.Fatalf("browser: add a script: %v", err)
	}
}
