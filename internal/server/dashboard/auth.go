package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The cookies of the dashboard.
const (
	// sessionCookie holds a session when the daemon has a token: its
	// expiry and an HMAC of it under a key derived from the token, never
	// the token itself.
	sessionCookie = "routines_session"
	// nonceCookie holds, when the daemon has no token, the random value
	// the CSRF tokens of forms are derived from.
	nonceCookie = "routines_csrf"
	// sessionFor is how long a login lasts.
	sessionFor = 12 * time.Hour
)

// auth keeps the dashboard to those who know the API token, and its
// forms to the pages it served. Sessions are stateless: a key derived
// from the token signs them, so every server of a deployment (and a
// restarted one) takes the sessions of the others, and a new token ends
// them all.
type auth struct {
	token string
	key   []byte
	cop   *http.CrossOriginProtection
	now   func() time.Time
}

func newAuth(token string) *auth {
	a := &auth{token: token, cop: http.NewCrossOriginProtection(), now: time.Now}
	if token != "" {
		a.key = mac([]byte(token), "routines dashboard sessions")
	} else {
		// Without a token nothing is secret but the forms' tokens, which
		// need only outlive the pages of this process.
		a.key = make([]byte, 32)
		_, _ = rand.Read(a.key)
	}
	return a
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func (a *auth) sign(msg string) string {
	return base64.RawURLEncoding.EncodeToString(mac(a.key, msg))
}

// session returns the request's valid session cookie value, or "".
func (a *auth) session(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	exp, sig, ok := strings.Cut(c.Value, ".")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || a.now().Unix() >= n ||
		subtle.ConstantTimeCompare([]byte(sig), []byte(a.sign("session|"+exp))) != 1 {
		return ""
	}
	return c.Value
}

// csrf returns the CSRF token of the forms of the page answering r: an
// HMAC of the session or, without a token, of the nonce cookie, which it
// sets when the browser has none.
func (a *auth) csrf(w http.ResponseWriter, r *http.Request) string {
	if a.token != "" {
		if s := a.session(r); s != "" {
			return a.sign("csrf|" + s)
		}
		return ""
	}
	if c, err := r.Cookie(nonceCookie); err == nil && c.Value != "" {
		return a.sign("csrf|" + c.Value)
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	nonce := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, cookie(r, nonceCookie, nonce, 0))
	return a.sign("csrf|" + nonce)
}

// checkCSRF reports whether a request that changes something comes from
// a form of the dashboard: from the same origin, with the CSRF token of
// the browser's session or nonce.
func (a *auth) checkCSRF(r *http.Request) bool {
	if a.cop.Check(r) != nil {
		return false
	}
	var base string
	if a.token != "" {
		base = a.session(r)
	} else if c, err := r.Cookie(nonceCookie); err == nil {
		base = c.Value
	}
	got := r.PostFormValue("csrf")
	return base != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.sign("csrf|"+base))) == 1
}

// cookie is a cookie of the dashboard: out of reach of scripts and of
// other sites' requests, sent over TLS only when it came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// require lets through the requests of a session (any, without a token),
// sending the others to the login form; and of those that change
// something, only the ones that pass checkCSRF.
func (a *auth) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" && a.session(r) == "" {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in to the dashboard first: open /ui/login", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !a.checkCSRF(r) {
			http.Error(w, "this form expired or came from another site: reload the page and try again", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localPath returns next when it is a path of this site, else "/": the
// login sends the browser on only within the dashboard.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// loginData is what the login form shows.
type loginData struct {
	Next  string
	Wrong bool
}

// loginForm renders the login form; without a token there is nothing to
// log in to.
func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if d.auth.token == "" || d.auth.session(r) != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: loginData{Next: next}})
}

// login checks the token of the login form and opens a session.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	if d.auth.token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if d.auth.cop.Check(r) != nil {
		http.Error(w, "a login must come from the dashboard's own form: open /ui/login", http.StatusForbidden)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(d.auth.token)) != 1 {
		d.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Data: loginData{Next: next, Wrong: true}})
		return
	}
	exp := strconv.FormatInt(d.auth.now().Add(sessionFor).Unix(), 10)
	http.SetCookie(w, cookie(r, sessionCookie, exp+"."+d.auth.sign("session|"+exp), int(sessionFor/time.Second)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session in this browser.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
