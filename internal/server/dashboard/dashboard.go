// Package dashboard owns the web dashboard that `routines serve` and
// `routines server` serve at /: the routines, runs, a run (with its logs
// streaming live), metrics and costs, as HTML rendered on the server with
// embedded templates, styles and a few lines of script, and charts drawn
// as SVG on the server. It reads the store; what changes something (cancel,
// re-run, replay) and the log streams go through the server's own API
// handler, so the dashboard adds no second implementation of them.
//
// With an API token configured, the dashboard asks for it once and keeps
// a session cookie (auth.go); every form that changes something carries a
// CSRF token.
package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// Routines finds the routines the daemon serves; *scheduler.Catalog is one.
type Routines interface {
	Get(name string) (*routine.Routine, bool)
	All() []*routine.Routine
}

// Config is what a dashboard is built from. Store, Routines and API are
// required.
type Config struct {
	Store    store.Store
	Routines Routines
	// API is the server's handler of /v1: the dashboard's buttons and log
	// streams are forwarded to it, with the token when one is set.
	API http.Handler
	// Token is the daemon's API token: when set, the dashboard requires it
	// (a login form, then a session cookie).
	Token string
	// Authenticate, when set, lets the tokens of the store log in too
	// (server.Server.Authenticate); the session then acts as that token,
	// with its role and namespace, looked up by hash on every request.
	Authenticate func(ctx context.Context, value string) (*store.Token, error)
	// NextFire tells when a routine's schedule fires it next (nil: never).
	NextFire func(ctx context.Context, r *routine.Routine, now time.Time) *time.Time
	Logger   *slog.Logger
	Sources
}

// Sources are what the dashboard shows beyond the store when the daemon
// has them; each is optional.
type Sources struct {
	// Artifacts lets a run's artifacts be listed and downloaded.
	Artifacts Artifacts
	// Costs prices usage and knows the budgets; without it the costs page
	// shows raw usage.
	Costs Costs
}

// Costs prices what runs used, with the rates of the server's
// configuration, and tells how the per-tag budgets stand.
type Costs interface {
	// Currency is the unit prices are in, such as "USD".
	Currency() string
	// Price is the cost of cpuSeconds of CPU and of usage.
	Price(cpuSeconds float64, usage routine.Usage) float64
	// Budgets are the per-tag budgets with what their period spent so far.
	Budgets(ctx context.Context, now time.Time) ([]Budget, error)
}

// Budget is one tag's budget and where it stands.
type Budget struct {
	Tag      string
	Limit    float64 // in Currency, per Period
	Spent    float64 // so far in the current period
	Period   string  // such as "month"
	OnExceed string  // "warn" or "stop"
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// csp keeps the pages to their own scripts and styles: no inline
// script or style, nothing from elsewhere, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Dashboard is the dashboard's http.Handler.
type Dashboard struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
	auth  *auth
}

// New returns the dashboard built from cfg.
func New(cfg Config) *Dashboard {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NextFire == nil {
		cfg.NextFire = func(context.Context, *routine.Routine, time.Time) *time.Time { return nil }
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), pages: parsePages(), auth: newAuth(cfg.Token)}
	if cfg.Authenticate != nil {
		d.auth.authenticate, d.auth.lookup = cfg.Authenticate, cfg.Store.TokenByHash
	}
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	d.mux.Handle("GET /ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	d.mux.HandleFunc("GET /ui/login", d.loginForm)
	d.mux.HandleFunc("POST /ui/login", d.login)
	d.mux.Handle("POST /ui/logout", d.auth.require(http.HandlerFunc(d.logout)))
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /{$}":               d.routines,
		"GET /ui/runs":           d.runs,
		"GET /ui/runs/{id}":      d.run,
		"GET /ui/runs/{id}/logs": d.logs,
		"GET /ui/runs/{id}/artifacts/{step}/{name...}": d.artifact,
		"POST /ui/runs/{id}/cancel":                    d.action("/v1/runs/{id}/cancel"),
		"POST /ui/runs/{id}/rerun":                     d.action("/v1/runs/{id}/rerun"),
		"POST /ui/runs/{id}/replay":                    d.action("/v1/dlq/{id}/replay"),
		"GET /ui/metrics":                              d.metrics,
		"GET /ui/costs":                                d.costs,
		"GET /ui/alerts":                               d.alerts,
		"GET /ui/audit":                                d.audit,
	} {
		d.mux.Handle(pattern, d.auth.require(h))
	}
	d.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	})
	return d
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	d.mux.ServeHTTP(w, r)
}

// page is what every page's template gets.
type page struct {
	Title string
	Nav   string // the nav item of the page
	// CSRF is the token forms that change something carry.
	CSRF string
	// LoggedIn says there is a session to log out of.
	LoggedIn bool
	// Range is the range of the stats pages, kept across them.
	Range string
	// Firing are the alerts firing now, shown on every page but the
	// alerts page.
	Firing []*store.AlertState
	// Budgets are the budgets 80 % spent or more, shown on every page.
	Budgets []Budget
	Data    any
}

// render writes page name with data, or a 500 when it cannot: the page
// is rendered into a buffer first, so an error never leaves half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	p.CSRF = d.auth.csrf(w, r)
	p.LoggedIn = d.auth.on()
	if p.Range == "" {
		p.Range = defaultRange
	}
	if name != "alerts" {
		p.Firing = d.firing(r.Context())
	}
	p.Budgets = d.budgetsSpent(r.Context())
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		d.log.Error("render dashboard page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

// fail renders the error page.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	d.render(w, r, code, "error", page{Title: http.StatusText(code), Data: msg})
}

// firing returns the alerts firing now; none when the store cannot
// tell, which the alerts page then reports.
func (d *Dashboard) firing(ctx context.Context) []*store.AlertState {
	states, err := d.cfg.Store.AlertStates(ctx)
	if err != nil {
		d.log.Warn("read alert states", "err", err)
		return nil
	}
	var out []*store.AlertState
	for _, st := range states {
		if st.State == routine.AlertFiring && d.sees(ctx, st.Routine) {
			out = append(out, st)
		}
	}
	return out
}

// budgetWarn is the share of a budget spent from which every page says
// so, as the budgets warn (docs/costs.md).
const budgetWarn = 0.8

// budgetsSpent returns the budgets budgetWarn spent or more.
func (d *Dashboard) budgetsSpent(ctx context.Context) []Budget {
	if d.cfg.Costs == nil {
		return nil
	}
	all, err := d.cfg.Costs.Budgets(ctx, time.Now())
	if err != nil {
		d.log.Warn("read budgets", "err", err)
		return nil
	}
	var out []Budget
	for _, b := range all {
		if b.Limit > 0 && b.Spent >= budgetWarn*b.Limit {
			out = append(out, b)
		}
	}
	return out
}

// alerts renders the alerts page: the newest records of firings and
// clearings.
func (d *Dashboard) alerts(w http.ResponseWriter, r *http.Request) {
	recent, err := d.cfg.Store.AlertList(r.Context(), &store.AlertListParams{Limit: 200})
	if err != nil {
		d.fail(w, r, http.StatusInternalServerError, "The alerts could not be read: "+err.Error())
		return
	}
	recent = slices.DeleteFunc(recent, func(a *routine.AlertRecord) bool { return !d.sees(r.Context(), a.Routine) })
	d.render(w, r, http.StatusOK, "alerts", page{Title: "Alerts", Nav: "alerts", Data: recent})
}

// storeError says what a failed read of the store means to the reader.
func storeError(what string, err error) string {
	if errors.Is(err, errors.ErrUnsupported) {
		return "The store keeps no " + what + " yet: this version of its driver cannot aggregate runs."
	}
	return "The " + what + " could not be read: " + err.Error()
}
