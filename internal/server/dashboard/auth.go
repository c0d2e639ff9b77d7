package dashboard

import (
	"context"
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

	"github.com/routines-dev/routines/internal/store"
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

// auth keeps the dashboard to those who know an API token, and its
// forms to the pages it served. Sessions are stateless, so every server
// of a deployment (and a restarted one) takes the sessions of the others.
// A session of the daemon's token (Config.Token) is signed with a key
// derived from it, so a new token ends them all. A session of a token of
// the store (Config.Authenticate) names the token by its hash and is
// signed with a key derived from that hash, which only the store holds;
// the token is looked up again on every request, so that its revocation
// or expiry ends the session at once.
type auth struct {
	token string
	// authenticate, when set, opens sessions with the tokens of the store.
	authenticate func(ctx context.Context, value string) (*store.Token, error)
	lookup       func(ctx context.Context, hash string) (*store.Token, error)
	key          []byte
	cop          *http.CrossOriginProtection
	now          func() time.Time
}

// on reports whether the dashboard asks for a token.
func (a *auth) on() bool { return a.token != "" || a.authenticate != nil }

// keyOf is the key that signs the sessions of who: the hash of a token of
// the store, or "" for the daemon's token.
func (a *auth) keyOf(who string) []byte {
	if who == "" {
		return a.key
	}
	return mac([]byte(who), "routines dashboard sessions")
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

// newSession is the value of the session cookie of who ("" for the
// daemon's token, else the hash of a token of the store) until exp:
// exp.who.signature.
func (a *auth) newSession(who string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + who + "." + base64.RawURLEncoding.EncodeToString(mac(a.keyOf(who), "session|"+e+"|"+who))
}

// session returns the request's valid session cookie value and who it
// is of, or "".
func (a *auth) session(r *http.Request) (value, who string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", ""
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 || (parts[1] != "" && a.lookup == nil) || (parts[1] == "" && a.token == "") {
		return "", ""
	}
	exp, who, sig := parts[0], parts[1], parts[2]
	n, err := strconv.ParseInt(exp, 10, 64)
	want := base64.RawURLEncoding.EncodeToString(mac(a.keyOf(who), "session|"+exp+"|"+who))
	if err != nil || a.now().Unix() >= n || subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 {
		return "", ""
	}
	return c.Value, who
}

// caller returns who the session of r acts as, or nil when it has none
// or its token no longer opens the API (revoked, expired).
func (a *auth) caller(r *http.Request) *store.Token {
	if !a.on() {
		return &store.Token{Name: "local", Role: store.RoleAdmin, Namespace: store.DefaultNamespace}
	}
	s, who := a.session(r)
	switch {
	case s == "":
		return nil
	case who == "":
		return &store.Token{Name: "daemon-token", Role: store.RoleAdmin, Namespace: store.DefaultNamespace}
	}
	t, err := a.lookup(r.Context(), who)
	if err != nil || !t.Valid(a.now()) {
		return nil
	}
	return t
}

// csrf returns the CSRF token of the forms of the page answering r: an
// HMAC of the session or, without a token, of the nonce cookie, which it
// sets when the browser has none.
func (a *auth) csrf(w http.ResponseWriter, r *http.Request) string {
	if a.on() {
		if s, _ := a.session(r); s != "" {
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
	if a.on() {
		base, _ = a.session(r)
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
		c := a.caller(r)
		if c == nil {
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
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
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
	if d.auth.caller(r) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "login", page{Title: "Log in", Data: loginData{Next: next}})
}

// login checks the token of the login form and opens a session.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	if !d.auth.on() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if d.auth.cop.Check(r) != nil {
		http.Error(w, "a login must come from the dashboard's own form: open /ui/login", http.StatusForbidden)
		return
	}
	value, who := r.PostFormValue("token"), ""
	ok := d.auth.token != "" && subtle.ConstantTimeCompare([]byte(value), []byte(d.auth.token)) == 1
	if !ok && d.auth.authenticate != nil && value != "" {
		if t, err := d.auth.authenticate(r.Context(), value); err == nil {
			ok, who = true, t.Hash
		}
	}
	if !ok {
		d.render(w, r, http.StatusUnauthorized, "login", page{Title: "Log in", Data: loginData{Next: next, Wrong: true}})
		return
	}
	http.SetCookie(w, cookie(r, sessionCookie, d.auth.newSession(who, d.auth.now().Add(sessionFor)), int(sessionFor/time.Second)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session in this browser.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// callerKey holds the caller of a request the dashboard forwards to the
// API: the token of the browser's session.
type callerKey struct{}

// WithCaller returns ctx carrying the caller c, for the API to authorise
// a request the dashboard forwards.
func WithCaller(ctx context.Context, c *store.Token) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// Caller returns the caller WithCaller put in ctx, or nil. Only the
// dashboard, in process, puts one there: no request from the network
// carries one.
func Caller(ctx context.Context) *store.Token {
	c, _ := ctx.Value(callerKey{}).(*store.Token)
	return c
}
