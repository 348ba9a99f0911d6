package browsertest

import (
	"fmt"
	"time"
)

// SignIn signs in through the console's sign-in form with a user name
// and password, as a person would, and waits for the console's shell.
func (p *Page) SignIn(user, password string) {
	p.tb.Helper()
	p.openSignIn()
	p.Type("#signin-user", user)
	p.Type("#signin-password", password)
	p.Click(".signin-form button[type=submit]")
	p.waitSignedIn(user)
}

// SignInToken signs in through the form's API token mode.
func (p *Page) SignInToken(user, token string) {
	p.tb.Helper()
	p.openSignIn()
	p.Click("#mode-token")
	p.Type("#signin-token", token)
	p.Click(".signin-form button[type=submit]")
	p.waitSignedIn(user)
}

// openSignIn loads the console and waits for its sign-in form.
func (p *Page) openSignIn() {
	p.tb.Helper()
	p.Open("/")
	p.WaitSelector(30*time.Second, ".signin-form")
}

// waitSignedIn waits until the shell shows the user.
func (p *Page) waitSignedIn(user string) {
	p.tb.Helper()
	p.Wait(30*time.Second, "signed in as "+user, fmt.Sprintf(`(() => {
		const u = document.querySelector('.shell .user-name');
		if (u) return {ok: u.textContent.trim() === %s, detail: "signed in as " + u.textContent};
		const s = document.querySelector('.signin-status, .error');
		return {ok: false, detail: s ? s.innerText : document.body.innerText.slice(0, 300)};
	})()`, jsString(user)))
}

// CSRFToken returns the CSRF token of the page's session, read as the
// console reads it (GET /v1/session).
func (p *Page) CSRFToken() string {
	p.tb.Helper()
	var tok string
	p.Eval(`fetch('/v1/session', {credentials: 'same-origin'}).then(r => r.json()).then(s => s.csrfToken || '')`, &tok)
	if tok == "" {
		p.tb.Fatal("browser: the session has no CSRF token")
	}
	return tok
}

// FillField types text into the form control labelled label (the text
// of its <label>); a <select> gets the option whose value is text.
func (p *Page) FillField(label, text string) {
	p.tb.Helper()
	// The control is the label's, or the first form control inside the
	// element the label names (an input with its datalist in a span).
	find := fmt.Sprintf(`(() => {
		const want = %s;
		const l = [...document.querySelectorAll('main label')].find(l => l.textContent.trim() === want);
		if (!l) return {ok: false, detail: "labels: " + [...document.querySelectorAll('main label')].map(l => l.textContent.trim()).join(", ")};
		let c = l.htmlFor ? document.getElementById(l.htmlFor) : l;
		if (c && !/^(INPUT|SELECT|TEXTAREA)$/.test(c.tagName)) c = c.querySelector('input, select, textarea');
		if (!c) return {ok: false, detail: "label without a control"};
		if (c.tagName === 'SELECT' && ![...c.options].some(o => o.value === %s)) return {ok: false, detail: "options: " + [...c.options].map(o => o.value).join(", ")};
		c.setAttribute('data-bt-field', want);
		return {ok: true, detail: c.tagName};
	})()`, jsString(label), jsString(text))
	p.Wait(30*time.Second, "a field labelled "+label, find)
	var c Check
	p.Eval(find, &c)
	sel := fmt.Sprintf("main [data-bt-field=%s]", jsString(label))
	if c.Detail == "SELECT" {
		p.Eval(fmt.Sprintf(`(() => { const c = document.querySelector(%s); c.value = %s;
			c.dispatchEvent(new Event('input', {bubbles: true})); c.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`,
			jsString(sel), jsString(text)), nil)
		return
	}
	p.Type(sel, text)
}
