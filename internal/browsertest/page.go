package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ouroboros-cloud/ouro/internal/wait"
)

// actionTimeout bounds one browser action (a click, a navigation, an
// evaluation).
const actionTimeout = 30 * time.Second

// Page is one tab with cookies of its own.
type Page struct {
	tb  testing.TB
	b   *Browser
	ctx context.Context
}

// Context returns the page's chromedp context, for actions this package
// has no helper for.
func (p *Page) Context() context.Context { return p.ctx }

// URL returns the console's base URL as the browser reaches it.
func (p *Page) URL() string { return p.b.URL }

// Run runs chromedp actions on the page within actionTimeout, failing the
// test on an error; what names them in the failure.
func (p *Page) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	if err := p.run(actionTimeout, actions...); err != nil {
		p.tb.Fatalf("browser: %s: %v", what, err)
	}
}

func (p *Page) run(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Open navigates to path below the console's base URL (e.g. "/" or
// "/#/map") and waits for the page to load. A change of the fragment
// alone does not load a page: use Route for that.
func (p *Page) Open(path string) {
	p.tb.Helper()
	p.Run("open "+path, chromedp.Navigate(p.b.URL+path))
}

// OpenURL navigates to an absolute URL (another origin).
func (p *Page) OpenURL(u string) {
	p.tb.Helper()
	p.Run("open "+u, chromedp.Navigate(u))
}

// Route moves the console's hash router to route (e.g. "#/instances").
func (p *Page) Route(route string) {
	p.tb.Helper()
	p.Eval(fmt.Sprintf("location.hash = %s", jsString(route)), nil)
}

// Eval evaluates a JavaScript expression in the page, awaiting a promise
// it returns, and decodes its (JSON) value into out unless out is nil.
func (p *Page) Eval(js string, out any) {
	p.tb.Helper()
	if err := p.eval(js, out); err != nil {
		p.tb.Fatalf("browser: evaluate %s: %v", tail(js, 200), err)
	}
}

func (p *Page) eval(js string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// Check is what a condition evaluated in the page answers.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Wait evaluates js, an expression whose value is {ok, detail}, until ok
// is true, failing the test after timeout with what and the last detail.
// A page that is loading (the expression fails) is asked again.
func (p *Page) Wait(timeout time.Duration, what, js string) {
	p.tb.Helper()
	wait.ForDetail(p.tb, timeout, what, func() (bool, string) {
		var c Check
		if err := p.eval(js, &c); err != nil {
			return false, err.Error()
		}
		return c.OK, c.Detail
	})
}

// WaitSelector waits until an element matching the CSS selector exists
// and is rendered (has a box).
func (p *Page) WaitSelector(timeout time.Duration, selector string) {
	p.tb.Helper()
	p.Wait(timeout, "an element "+selector, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) return {ok: false, detail: "none; page shows: " + document.body.innerText.slice(0, 400)};
		return {ok: el.getClientRects().length > 0, detail: "present but not rendered"};
	})()`, jsString(selector)))
}

// WaitText waits until the text of an element matching selector contains
// text.
func (p *Page) WaitText(timeout time.Duration, selector, text string) {
	p.tb.Helper()
	p.Wait(timeout, fmt.Sprintf("%q in %s", text, selector), fmt.Sprintf(`(() => {
		const want = %s;
		const els = [...document.querySelectorAll(%s)];
		if (els.some(el => (el.innerText || el.textContent).includes(want))) return {ok: true};
		return {ok: false, detail: els.length + " elements; texts: " + els.map(el => el.innerText || el.textContent).join(" | ").slice(0, 600)};
	})()`, jsString(text), jsString(selector)))
}

// Click clicks the first element matching selector once it is visible.
func (p *Page) Click(selector string) {
	p.tb.Helper()
	p.Run("click "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

// Type focuses the first element matching selector, clears it and types
// text into it with key events, as a person would.
func (p *Page) Type(selector, text string) {
	p.tb.Helper()
	p.Run("type into "+selector,
		chromedp.WaitVisible(chromedp.CSS(selector)),
		chromedp.Clear(chromedp.CSS(selector)),
		chromedp.SendKeys(chromedp.CSS(selector), text))
}

// Press types text into the first element matching selector, a
// terminal's input: runs of text are inserted as an input method would
// (Input.insertText), and each "\r" is a key-down and key-up of Enter.
// Key events with characters would reach xterm.js twice (as a key-down
// and as a character), and without them it drops spaces and capitals.
func (p *Page) Press(selector string, text string) {
	p.tb.Helper()
	p.Run("type into "+selector, chromedp.Focus(chromedp.CSS(selector)), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for i, part := range strings.Split(text, "\r") {
			if i > 0 {
				for _, k := range kb.Encode('\r') {
					if k.Type == kb.KeyChar {
						continue
					}
					if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, *k); err != nil {
						return err
					}
				}
			}
			if part == "" {
				continue
			}
			if _, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: part}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Keys types text with key events into whatever has the focus.
func (p *Page) Keys(text string) {
	p.tb.Helper()
	p.Run("type", chromedp.KeyEvent(text))
}

// Response is the answer to a request sent from the page.
type Response struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// Fetch sends a request from the page's own context with fetch (its
// cookies, its origin) and returns the answer. url is absolute or
// relative to the page.
func (p *Page) Fetch(method, url string, headers map[string]string, body string) Response {
	p.tb.Helper()
	if headers == nil {
		headers = map[string]string{}
	}
	h, _ := json.Marshal(headers)
	init := fmt.Sprintf(`{method: %s, headers: %s, credentials: "include"`, jsString(method), h)
	if body != "" {
		init += ", body: " + jsString(body)
	}
	init += "}"
	var r Response
	p.Eval(fmt.Sprintf(`fetch(%s, %s).then(async r => ({status: r.status, body: await r.text()}),
		e => ({status: 0, body: String(e)}))`, jsString(url), init), &r)
	return r
}

// Screenshot saves the page as name.png in the screenshots directory
// (ScreenshotsEnv) when that is set, and does nothing otherwise.
func (p *Page) Screenshot(name string) {
	p.tb.Helper()
	dir := Screenshots(p.tb)
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.tb.Fatalf("browser: screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.tb.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.tb.Fatal(err)
	}
	p.tb.Logf("screenshot %s", path)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
